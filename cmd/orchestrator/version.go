package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version and build information",
		setup: func(*flagSet) func(*runEnv) error {
			return func(env *runEnv) error {
				rev := "unknown"
				if info, ok := debug.ReadBuildInfo(); ok {
					for _, s := range info.Settings {
						if s.Key == "vcs.revision" {
							rev = s.Value
						}
					}
				}
				_, err := fmt.Fprintf(env.stdout, "orchestrator %s (revision %s, %s, %s/%s)\n",
					version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
				return err
			}
		},
	}
}
