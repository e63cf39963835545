package main

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/tfe-orchestrator/orchestrator/internal/demo"
)

// defaultDemoScenario is where the shipped scenario lives in the source tree.
const defaultDemoScenario = "examples/demo.yaml"

func demoCommand() *command {
	return &command{
		name:    "demo",
		summary: "run the whole product against the simulator and watch a cascade happen",
		// The daemon's logs (on stderr) would drown the story on stdout;
		// --log-level info or debug shows them.
		logLevel: "warn",
		setup: func(fs *flagSet) func(*runEnv) error {
			var scenario, picture string
			var noColor, keepServing bool
			fs.stringVar(&scenario, "scenario", "ORCHESTRATOR_DEMO_SCENARIO", defaultDemoScenario, "demo scenario file")
			fs.stringVar(&picture, "picture", "", "cascade.mmd", "write a Mermaid picture of the outcome here (empty for none)")
			fs.boolVar(&noColor, "no-color", "NO_COLOR", false, "no colour, even on a terminal")
			fs.boolVar(&keepServing, "keep-serving", "", false, "after the summary, keep the daemon, its web page and the simulator up until interrupted, and print the exports that point the CLI at them")
			return func(env *runEnv) error {
				sc, err := demo.LoadScenario(scenario)
				if err != nil {
					if errors.Is(err, os.ErrNotExist) && scenario == defaultDemoScenario {
						return usagef("%s not found: run the demo from the repository's root, or give --scenario", scenario)
					}
					return usagef("--scenario: %v", err)
				}
				if picture != "" {
					if st, err := os.Stat(filepath.Dir(picture)); err != nil || !st.IsDir() {
						return usagef("--picture %s: the directory %s does not exist", picture, filepath.Dir(picture))
					}
				}
				rep, err := demo.Run(env.ctx, demo.Options{
					Scenario: sc, Out: env.stdout, Color: !noColor && isTerminal(env.stdout), Picture: picture,
					KeepServing: keepServing, Log: env.log,
				})
				if err != nil {
					return err
				}
				if len(rep.Failures) > 0 {
					return errors.New("the scenario's expectations did not hold")
				}
				return nil
			}
		},
	}
}

func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
