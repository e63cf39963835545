package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/api"
	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
)

// The operators' commands: clients of serve's API (docs/api.md).

// apiFlags are the flags every API command takes.
type apiFlags struct {
	server, output                 string
	tokenValue, tokenFile, tokenAs string
}

func (a *apiFlags) define(fs *flagSet) {
	fs.stringVar(&a.server, "server", "ORCHESTRATOR_SERVER", "http://127.0.0.1:8080", "the orchestrator's HTTP address (serve --http-listen)")
	fs.stringVar(&a.tokenValue, "token", "ORCHESTRATOR_API_TOKEN", "", "bearer token of the operator API: one serve was given (--api-read-token or --api-operate-token), as name:secret or the secret alone")
	fs.stringVar(&a.tokenFile, "token-file", "ORCHESTRATOR_API_TOKEN_FILE", "", "read the token from this file, in the form serve reads its token files: name:secret (or secret) lines, # comment lines, blank lines")
	fs.stringVar(&a.tokenAs, "token-name", "ORCHESTRATOR_API_TOKEN_NAME", "", "the token to use, by name, when --token-file holds several")
	fs.stringVar(&a.output, "output", "", "table", "output: table or json")
}

// client checks the flags and returns the API client.
func (a *apiFlags) client() (*api.Client, error) {
	if a.output != "table" && a.output != "json" {
		return nil, usagef("--output must be table or json, not %q", a.output)
	}
	if err := app.CheckHTTPURL(a.server); err != nil {
		return nil, usagef("--server %q: %v", a.server, err)
	}
	token, err := a.token()
	if err != nil {
		return nil, err
	}
	return &api.Client{Server: a.server, Token: token}, nil
}

// token returns the secret to send. It reads --token and --token-file as
// serve reads its API tokens (api.ParseTokens), so that the value or the
// file serve was given works here as it is.
func (a *apiFlags) token() (string, error) {
	value := strings.TrimSpace(a.tokenValue)
	if value != "" && a.tokenFile != "" {
		return "", usagef("give --token or --token-file, not both")
	}
	var lines []string
	source := "--token"
	switch {
	case a.tokenFile != "":
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return "", fmt.Errorf("read --token-file: %w", err)
		}
		source = "--token-file " + a.tokenFile
		if lines = secretLines(b); len(lines) == 0 {
			return "", usagef("%s holds no token", source)
		}
	case value != "":
		lines = []string{value}
	default:
		return "", usagef("give the API token: --token, --token-file or $ORCHESTRATOR_API_TOKEN (a token serve was given with --api-read-token or --api-operate-token)")
	}
	tokens, err := api.ParseTokens(api.RoleRead, lines) // the role is serve's business; only name and secret are used
	if err != nil {
		return "", usagef("%s: %v", source, err)
	}
	names := make([]string, len(tokens))
	for i, t := range tokens {
		names[i] = t.Name
	}
	if a.tokenAs != "" {
		for _, t := range tokens {
			if t.Name == a.tokenAs {
				return t.Secret, nil
			}
		}
		return "", usagef("%s holds no token named %q (it holds %s)", source, a.tokenAs, strings.Join(names, ", "))
	}
	if len(tokens) > 1 {
		return "", usagef("%s holds %d tokens (%s): choose one with --token-name", source, len(tokens), strings.Join(names, ", "))
	}
	return tokens[0].Secret, nil
}

// print writes v as JSON with --output json, else calls table.
func (a *apiFlags) print(w io.Writer, v any, table func(io.Writer) error) error {
	if a.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if err := table(tw); err != nil {
		return err
	}
	return tw.Flush()
}

// decisionFlags are who (optional) and why (required) of a control.
type decisionFlags struct{ by, why string }

func (d *decisionFlags) define(fs *flagSet) {
	fs.stringVar(&d.by, "by", "ORCHESTRATOR_OPERATOR", "", "who decides (recorded with the control; default: the token's name)")
	fs.stringVar(&d.why, "why", "", "", "why (required, at most 1,000 characters; recorded with the control and in the audit trail, and shown to everyone)")
}

func (d *decisionFlags) decision() (api.Decision, error) {
	if strings.TrimSpace(d.why) == "" {
		return api.Decision{}, usagef("--why is required: say why, it is recorded with the control")
	}
	return api.Decision{By: d.by, Why: d.why}, nil
}

// apiError words an API failure for a person.
func apiError(err error) error {
	var e *api.Error
	if errors.As(err, &e) {
		switch e.Status {
		case 401: // the commands always send a token: this one is unknown there
			return fmt.Errorf("the server refused the token (%s): give one serve was given with --api-read-token or --api-operate-token, as name:secret or the secret alone", e.Message)
		case 403:
			return fmt.Errorf("not allowed: %s", e.Message)
		}
		return errors.New(e.Message)
	}
	return err
}

func cascadesListCommand() *command {
	return apiCommand("cascades list", "", "list the cascades the orchestrator keeps, newest first", func(fs *flagSet, af *apiFlags) func(*runEnv, *api.Client) error {
		var o api.ListOptions
		var since string
		fs.stringVar(&o.Organization, "organization", "", "", "only this organization's")
		fs.stringVar(&o.Workspace, "workspace", "", "", "only those with this workspace (name or ID) as root or member")
		fs.stringVar(&o.State, "state", "", "", "only those running, done or set_aside")
		fs.stringVar(&since, "since", "", "", "only those started since: a duration (2h) or a time (2026-11-23T10:00:00Z)")
		fs.intVar(&o.Limit, "limit", "", 50, "at most this many")
		return func(env *runEnv, c *api.Client) error {
			if since != "" {
				var err error
				if o.Since, err = parseSince(since, time.Now()); err != nil {
					return err
				}
			}
			list, err := c.List(env.ctx, o)
			if err != nil {
				return apiError(err)
			}
			return af.print(env.stdout, map[string]any{"cascades": list}, func(w io.Writer) error {
				public := publicURL(env, c)
				head := "ID\tORGANIZATION\tROOT\tSTATE\tSTARTED\tMEMBERS\tPROGRESS"
				if public != "" {
					head += "\tPAGE"
				}
				fmt.Fprintln(w, head)
				for _, s := range list {
					state := s.State
					if s.Outcome != "" {
						state += " (" + string(s.Outcome) + ")"
					}
					page := ""
					if public != "" {
						page = "\t" + alerts.PageURL(public, s.ID)
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s%s\n", s.ID, s.Organization, s.Root, state,
						formatTime(s.StartedAt), s.Members, counts(s.Counts), page)
				}
				if len(list) == 0 {
					fmt.Fprintln(w, "(no cascades)")
				}
				return nil
			})
		}
	})
}

// parseSince reads a duration back from now, or a time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, usagef("--since %q: want a duration (2h, 30m) or a time (2026-11-23T10:00:00Z)", s)
}

// counts prints member counts in the order of a cascade's progress.
func counts(c map[string]int) string {
	var parts []string
	for _, st := range cascade.States {
		if n := c[string(st)]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	return strings.Join(parts, ", ")
}

func cascadesShowCommand() *command {
	return apiCommand("cascades show", "ID", "show a cascade: its members in order, their states, reasons and runs", func(fs *flagSet, af *apiFlags) func(*runEnv, *api.Client) error {
		return func(env *runEnv, c *api.Client) error {
			v, err := c.Show(env.ctx, env.args[0])
			if err != nil {
				return apiError(err)
			}
			return af.print(env.stdout, v, func(w io.Writer) error { return writePage(w, v, alerts.PageURL(publicURL(env, c), v.ID)) })
		}
	})
}

// publicURL is where operators reach the server (serve --public-url), as
// its status says; "" when it is not set or the status cannot be read
// (the link is a convenience: its absence fails nothing).
func publicURL(env *runEnv, c *api.Client) string {
	st, err := c.Status(env.ctx)
	if err != nil {
		return ""
	}
	return st.PublicURL
}

// writeView writes a cascade as a person reads it.
func writeView(w io.Writer, v *dispatcher.View) error { return writePage(w, v, "") }

// writePage is writeView with the link to the cascade's page, if any.
func writePage(w io.Writer, v *dispatcher.View, page string) error {
	state := v.State
	if v.Outcome != "" {
		state += " (" + string(v.Outcome) + ")"
	}
	fmt.Fprintf(w, "cascade %s from %s in %s: %s\n", v.ID, v.Root, v.Organization, state)
	if page != "" {
		fmt.Fprintf(w, "page:\t%s\n", page)
	}
	fmt.Fprintf(w, "root run:\t%s\n", orID(v.RootRunURL, v.RootRunID))
	fmt.Fprintf(w, "started:\t%s\n", formatTime(v.StartedAt))
	if !v.FinishedAt.IsZero() {
		fmt.Fprintf(w, "finished:\t%s (took %s)\n", formatTime(v.FinishedAt), v.FinishedAt.Sub(v.StartedAt).Round(time.Second))
	}
	for _, l := range []struct{ label, v string }{{"paused", v.Paused}, {"held", v.Held}, {"cancelled", v.Cancelled}, {"reason", v.Reason}} {
		if l.v != "" {
			fmt.Fprintf(w, "%s:\t%s\n", l.label, l.v)
		}
	}
	for _, c := range v.Cycles {
		fmt.Fprintf(w, "cycle:\t%s\n", c)
	}
	if v.RunsSaved > 0 {
		fmt.Fprintf(w, "runs saved:\t%d (none of their upstreams' outputs changed)\n", v.RunsSaved)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "LAYER\tWORKSPACE\tSTATE\tRUN\tREASON")
	for _, m := range v.Members {
		run := m.RunID
		if m.Adopted {
			run += " (TFE's)"
		}
		reason := m.Reason
		if m.Gate != "" && !strings.Contains(reason, m.Gate) {
			reason += " (" + m.Gate + ")"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", m.Layer, m.Name, m.State, run, reason)
	}
	return nil
}

func orID(url, id string) string {
	if url != "" {
		return url
	}
	return id
}

func cascadesWatchCommand() *command {
	return apiCommand("cascades watch", "ID", "follow a cascade until it ends: a line per member that changes (exit 3 if it did not apply)", func(fs *flagSet, af *apiFlags) func(*runEnv, *api.Client) error {
		var waitStart time.Duration
		fs.durationVar(&waitStart, "wait-start", "", 2*time.Minute, "how long to wait for a cascade that has not started yet (its root run has not applied); 0 fails at once")
		return func(env *runEnv, c *api.Client) error {
			if waitStart < 0 {
				return usagef("--wait-start must not be negative, not %s", waitStart)
			}
			last := map[string]string{}
			var end *dispatcher.View
			enc := json.NewEncoder(env.stdout)
			err := watchStarted(env, c, waitStart, func(v *dispatcher.View) bool {
				if af.output == "json" {
					_ = enc.Encode(v) // one view per line
				} else {
					for _, m := range v.Members {
						line := fmt.Sprintf("%s %s %s", m.State, m.RunID, m.Reason)
						if last[m.Name] != line {
							last[m.Name] = line
							fmt.Fprintf(env.stdout, "%s  %-24s %-18s %s  %s\n", formatTime(time.Now()), m.Name, m.State, m.RunID, m.Reason)
						}
					}
				}
				if v.State == dispatcher.StateRunning {
					return true
				}
				end = v
				return false
			})
			if err != nil {
				return apiError(err)
			}
			if end == nil {
				return errors.New("the stream ended before the cascade did")
			}
			if af.output != "json" {
				fmt.Fprintf(env.stdout, "cascade %s %s: %s\n", end.ID, end.State, end.Outcome)
			}
			if end.Outcome != cascade.OutcomeApplied {
				return errFindings // told above; exit 1 is for errors
			}
			return nil
		}
	})
}

// watchStarted is c.Watch on the cascade env.args[0], which it waits for,
// up to wait, when it has not started yet: a cascade's ID is known from
// its root run as soon as that is queued, well before the run applies.
func watchStarted(env *runEnv, c *api.Client, wait time.Duration, fn func(*dispatcher.View) bool) error {
	id := env.args[0]
	deadline := time.Now().Add(wait)
	told := false
	for {
		err := c.Watch(env.ctx, id, fn)
		if !notStarted(err) {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			if !told {
				return err
			}
			return fmt.Errorf("cascade %s did not start within %s (--wait-start)", id, wait)
		}
		if !told {
			told = true
			fmt.Fprintf(env.stderr, "cascade %s has not started (its root run has not applied yet); waiting up to %s for it\n", id, wait)
		}
		select {
		case <-env.ctx.Done():
			return env.ctx.Err()
		case <-time.After(min(time.Second, left)):
		}
	}
}

// notStarted says whether err is the API's answer for a cascade it does
// not have (and not a 404 of another kind: the API off, a wrong --server).
func notStarted(err error) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Status == 404 && strings.Contains(e.Message, dispatcher.ErrNoCascade.Error())
}

// apiCommand is a command that talks to the API: it takes the API flags,
// and what setup returns runs with the client.
func apiCommand(name, args, summary string, setup func(*flagSet, *apiFlags) func(*runEnv, *api.Client) error) *command {
	return &command{
		name:    name,
		args:    args,
		summary: summary,
		setup: func(fs *flagSet) func(*runEnv) error {
			var af apiFlags
			af.define(fs)
			do := setup(fs, &af)
			return func(env *runEnv) error {
				c, err := af.client()
				if err != nil {
					return err
				}
				return do(env, c)
			}
		},
	}
}

// steerCommand is a command that uses a control on one cascade and
// prints the cascade as it then stands. setup defines the command's own
// flags and returns what it does with the client and the decision.
func steerCommand(name, args, summary string, setup func(fs *flagSet) func(*runEnv, *api.Client, api.Decision) (*dispatcher.View, error)) *command {
	return apiCommand(name, args, summary, func(fs *flagSet, af *apiFlags) func(*runEnv, *api.Client) error {
		var df decisionFlags
		df.define(fs)
		do := setup(fs)
		return func(env *runEnv, c *api.Client) error {
			d, err := df.decision()
			if err != nil {
				return err
			}
			v, err := do(env, c, d)
			if err != nil {
				return apiError(err)
			}
			return af.print(env.stdout, v, func(w io.Writer) error { return writeView(w, v) })
		}
	})
}

func cascadesCancelCommand() *command {
	return steerCommand("cascades cancel", "ID",
		"cancel a cascade: it dispatches nothing more (with --stop-runs, its runs that have not started applying are stopped)",
		func(fs *flagSet) func(*runEnv, *api.Client, api.Decision) (*dispatcher.View, error) {
			var stop bool
			fs.boolVar(&stop, "stop-runs", "", false, "also discard or cancel its runs that have not started applying")
			return func(env *runEnv, c *api.Client, d api.Decision) (*dispatcher.View, error) {
				return c.Cancel(env.ctx, env.args[0], api.CancelRequest{Decision: d, StopRuns: stop})
			}
		})
}

func cascadesRetryCommand() *command {
	return steerCommand("cascades retry", "ID WORKSPACE", "run a failed or blocked member of a cascade again, and resume what it blocked",
		func(*flagSet) func(*runEnv, *api.Client, api.Decision) (*dispatcher.View, error) {
			return func(env *runEnv, c *api.Client, d api.Decision) (*dispatcher.View, error) {
				a, err := c.Retry(env.ctx, env.args[0], api.RetryRequest{Decision: d, Workspace: env.args[1]})
				if err != nil {
					return nil, err
				}
				// What the retry set in motion, on stderr: stdout stays the
				// cascade (or its JSON).
				resumes := "nothing blocked behind it"
				if len(a.Retry.Unblocks) > 0 {
					resumes = strings.Join(a.Retry.Unblocks, ", ")
				}
				fmt.Fprintf(env.stderr, "retrying %s; it resumes %s\n", a.Retry.Member, resumes)
				return a.View, nil
			}
		})
}

func cascadesApproveCommand() *command {
	return steerCommand("cascades approve", "ID", "let a cascade the blast-radius guard holds (serve --guard-limit) go",
		func(*flagSet) func(*runEnv, *api.Client, api.Decision) (*dispatcher.View, error) {
			return func(env *runEnv, c *api.Client, d api.Decision) (*dispatcher.View, error) {
				return c.Approve(env.ctx, env.args[0], d)
			}
		})
}

// pauseCommand is pause or resume.
func pauseCommand(resume bool) *command {
	name, summary := "pause", "pause dispatching (everywhere, or in one organization): no cascade starts a run until resume"
	if resume {
		name, summary = "resume", "resume dispatching: the paused cascades go on where they stopped"
	}
	return apiCommand(name, "", summary, func(fs *flagSet, af *apiFlags) func(*runEnv, *api.Client) error {
		var df decisionFlags
		df.define(fs)
		var org string
		fs.stringVar(&org, "organization", "", "", "only this organization (default: everywhere)")
		return func(env *runEnv, c *api.Client) error {
			if org != "" {
				if err := organizationName(org); err != nil {
					return usagef("--organization %q: %v", org, err)
				}
			}
			d, err := df.decision()
			if err != nil {
				return err
			}
			if resume {
				ans, err := c.Resume(env.ctx, org, d)
				if err != nil {
					return apiError(err)
				}
				return af.print(env.stdout, ans, func(w io.Writer) error {
					if ans.Lifted != nil {
						fmt.Fprintf(w, "lifted the pause of %s: %s had paused it since %s (%s)\n", scope(org), ans.Lifted.By, formatTime(ans.Lifted.At), ans.Lifted.Why)
					} else {
						fmt.Fprintf(w, "nothing lifted: there was no pause of %s\n", scope(org))
					}
					return writePauses(w, &ans.Controls)
				})
			}
			ctl, err := c.Pause(env.ctx, org, d)
			if err != nil {
				return apiError(err)
			}
			return af.print(env.stdout, ctl, func(w io.Writer) error { return writePauses(w, ctl) })
		}
	})
}

// scope words what a pause concerns: an organization, or everything.
func scope(org string) string {
	if org == "" {
		return "everything"
	}
	return "organization " + org
}

func writePauses(w io.Writer, ctl *api.Controls) error {
	if len(ctl.Paused) == 0 {
		fmt.Fprintln(w, "dispatching is not paused anywhere")
		return nil
	}
	orgs := make([]string, 0, len(ctl.Paused))
	for org := range ctl.Paused {
		orgs = append(orgs, org)
	}
	sort.Strings(orgs)
	fmt.Fprintln(w, "PAUSED\tBY\tSINCE\tWHY")
	for _, org := range orgs {
		p := ctl.Paused[org]
		if org == "" {
			org = "everywhere"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", org, p.By, formatTime(p.At), p.Why)
	}
	return nil
}

func whyCommand() *command {
	return apiCommand("why", "WORKSPACE", "say what the cascades kept did to a workspace (by name or ID), and why", func(fs *flagSet, af *apiFlags) func(*runEnv, *api.Client) error {
		var org string
		fs.stringVar(&org, "organization", "", "", "the workspace's organization (names are unique only inside one)")
		return func(env *runEnv, c *api.Client) error {
			why, err := c.Why(env.ctx, org, env.args[0])
			if err != nil {
				return apiError(err)
			}
			// No cascade kept knows the workspace: a name mistyped, or one
			// no cascade reached. Either way there is no answer; exit 1.
			unknown := len(why.Cascades) == 0 && why.Excluded == nil
			err = af.print(env.stdout, why, func(w io.Writer) error {
				if why.Explanation != "" {
					fmt.Fprintln(w, why.Explanation)
				}
				for _, e := range why.Cascades {
					fmt.Fprintf(w, "%s  %s  %s\n", formatTime(e.StartedAt), e.CascadeID, e.State)
					fmt.Fprintf(w, "    %s\n", e.Explanation)
					if e.RunURL != "" {
						fmt.Fprintf(w, "    %s\n", e.RunURL)
					}
				}
				if why.Excluded != nil && why.Explanation == "" {
					fmt.Fprintf(w, "It is excluded from cascades (%s: %s).\n", why.Excluded.By, why.Excluded.Why)
				}
				return nil
			})
			if err != nil || !unknown {
				return err
			}
			where := "any organization"
			if org != "" {
				where = "organization " + org
			}
			return fmt.Errorf("no cascade kept knows a workspace %q in %s: check the name (names are case-sensitive; a workspace ID works too)", env.args[0], where)
		}
	})
}
