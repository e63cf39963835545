package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfegraph"
)

// tfeFlags are the flags that reach TFE, named as go-tfe's variables.
type tfeFlags struct {
	address string
	token   func() (string, error)
}

func (f *tfeFlags) define(fs *flagSet) {
	fs.stringVar(&f.address, "tfe-address", "TFE_ADDRESS", "https://app.terraform.io", "TFE or HCP Terraform address")
	f.token = fs.secret("tfe-token", "TFE_TOKEN", "TFE API token")
}

// check validates the flags before anything reaches TFE.
func (f *tfeFlags) check() (token string, err error) {
	if err := app.CheckHTTPURL(f.address); err != nil {
		return "", usagef("--tfe-address %q: %v", f.address, err)
	}
	if token, err = f.token(); err != nil {
		return "", err
	}
	if token == "" {
		return "", usagef("--tfe-token (or $TFE_TOKEN, or --tfe-token-file) is required")
	}
	return token, nil
}

func (f *tfeFlags) client() (*tfe.Client, error) {
	token, err := f.check()
	if err != nil {
		return nil, err
	}
	c, err := tfe.NewClient(&tfe.Config{Address: f.address, Token: token, RetryServerErrors: true})
	if err != nil {
		return nil, fmt.Errorf("connect to TFE at %s: %w", f.address, err)
	}
	return c, nil
}

func graphCommand() *command {
	return &command{
		name:    "graph",
		summary: "show an organization's run-trigger graph, its cycles and lints, or a cascade's order",
		setup: func(fs *flagSet) func(*runEnv) error {
			var org, input, format, root string
			var tf tfeFlags
			tf.define(fs)
			fs.stringVar(&org, "organization", "TFE_ORGANIZATION", "", "read the graph of this TFE organization")
			fs.stringVar(&input, "input", "", "", "read the graph from this JSON file (as --format json writes it; - for stdin)")
			fs.stringVar(&format, "format", "", "text", "output: text, dot, mermaid or json")
			fs.stringVar(&root, "root", "", "", "print the cascade from this workspace (name or ID): order, barriers, what a cycle blocks")
			return func(env *runEnv) error {
				if (org == "") == (input == "") {
					return usagef("give exactly one of --organization and --input")
				}
				if org != "" {
					if err := organizationName(org); err != nil {
						return usagef("--organization %q: %v", org, err)
					}
					if _, err := tf.check(); err != nil {
						return err
					}
				}
				switch format {
				case "text", "json":
				case "dot", "mermaid":
					if root != "" {
						return usagef("--root prints text or json, not %s", format)
					}
				default:
					return usagef("--format must be text, dot, mermaid or json, not %q", format)
				}
				g, err := loadGraph(env, &tf, org, input)
				if err != nil {
					return err
				}
				return printGraph(env, g, format, root)
			}
		},
	}
}

func loadGraph(env *runEnv, tf *tfeFlags, org, input string) (*graph.Graph, error) {
	if input != "" {
		var r io.Reader = os.Stdin
		if input != "-" {
			f, err := os.Open(input)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			r = f
		}
		var doc graph.Document
		dec := json.NewDecoder(r)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("read %s: %w", input, err)
		}
		g, err := graph.FromDocument(doc)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", input, err)
		}
		return g, nil
	}
	client, err := tf.client()
	if err != nil {
		return nil, err
	}
	return tfegraph.LoadOrganization(env.ctx, tfeclient.New(client), org)
}

// printGraph writes the graph (or the cascade from root) to stdout and the
// findings after it (to stderr for the machine-readable formats). A cycle
// makes the command exit 3.
func printGraph(env *runEnv, g *graph.Graph, format, root string) error {
	var err error
	if root != "" {
		w, ok := g.Lookup(root)
		if !ok {
			return usagef("--root %q is not a workspace of the graph", root)
		}
		p, perr := g.Plan(w.ID)
		if perr != nil {
			return perr
		}
		if format == "json" {
			enc := json.NewEncoder(env.stdout)
			enc.SetIndent("", "  ")
			err = enc.Encode(p)
		} else {
			err = g.WritePlan(env.stdout, p)
		}
	} else {
		switch format {
		case "text":
			err = g.WriteText(env.stdout)
		case "dot":
			err = g.WriteDOT(env.stdout)
		case "mermaid":
			err = g.WriteMermaid(env.stdout)
		case "json":
			err = g.WriteJSON(env.stdout)
		}
	}
	if err != nil {
		return err
	}
	findings := g.Lint()
	out := env.stdout
	switch {
	case format == "json" && root == "":
		out = io.Discard // the document holds them
	case format != "text":
		out = env.stderr
	}
	cycles := 0
	if len(findings) > 0 {
		fmt.Fprintf(out, "findings:\n")
	}
	for _, f := range findings {
		fmt.Fprintf(out, "  %s: %s\n", f.Kind, f.Message)
		if f.Kind == graph.FindingCycle {
			cycles++
		}
	}
	if cycles > 0 {
		return errFindings
	}
	return nil
}
