package main

import (
	"fmt"
	"os"

	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfenotify"
)

func notificationsInstallCommand() *command {
	return &command{
		name:    "notifications install",
		summary: "install the orchestrator's notification configuration on every workspace (or those with --tag)",
		setup: func(fs *flagSet) func(*runEnv) error {
			var o tfenotify.Options
			var tokenFile string
			var tf tfeFlags
			tf.define(fs)
			fs.stringVar(&o.Organization, "organization", "TFE_ORGANIZATION", "", "the TFE organization")
			fs.stringVar(&o.URL, "url", "ORCHESTRATOR_WEBHOOK_URL", "", "the daemon's webhook URL, e.g. https://orchestrator.example.com/webhooks/tfe")
			fs.stringVar(&tokenFile, "token-file", "ORCHESTRATOR_WEBHOOK_TOKEN_FILE", "", "file holding the webhook token the daemon verifies signatures with")
			fs.stringVar(&o.Tags, "tag", "", "", "only workspaces with these tags (comma-separated)")
			fs.stringVar(&o.Name, "name", "", tfenotify.DefaultName, "name of the notification configuration")
			fs.BoolVar(&o.UpdateToken, "update-token", false, "write the token on existing configurations too (TFE never shows it, so it cannot be compared)")
			fs.BoolVar(&o.DryRun, "dry-run", false, "show what would change and change nothing")
			return func(env *runEnv) error {
				switch {
				case o.Organization == "":
					return usagef("--organization is required")
				case organizationName(o.Organization) != nil:
					return usagef("--organization %q: %v", o.Organization, organizationName(o.Organization))
				case app.CheckHTTPURL(o.URL) != nil:
					return usagef("--url %q must be the daemon's http:// or https:// webhook URL", o.URL)
				case tokenFile == "":
					return usagef("--token-file is required")
				case o.Name == "":
					return usagef("--name must not be empty")
				}
				if _, err := tf.check(); err != nil {
					return err
				}
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return fmt.Errorf("read --token-file: %w", err)
				}
				// The file serve reads its tokens from: one per line, # comments.
				switch tokens := secretLines(b); len(tokens) {
				case 0:
					return usagef("--token-file %s holds no token", tokenFile)
				case 1:
					o.Token = tokens[0]
				default:
					return usagef("--token-file %s holds %d tokens; give a file with the one token to install", tokenFile, len(tokens))
				}
				client, err := tf.client()
				if err != nil {
					return err
				}
				results, err := tfenotify.Install(env.ctx, tfeclient.New(client), o)
				counts := map[string]int{}
				for _, r := range results {
					counts[r.Action]++
					if r.Action != "unchanged" {
						verb := r.Action
						if o.DryRun {
							verb = "would be " + verb
						}
						fmt.Fprintf(env.stdout, "%-40s %s\n", r.Workspace, verb)
					}
				}
				prefix := ""
				if o.DryRun {
					prefix = "dry run: "
				}
				fmt.Fprintf(env.stdout, "%s%d created, %d updated, %d unchanged\n", prefix, counts["created"], counts["updated"], counts["unchanged"])
				return err
			}
		},
	}
}
