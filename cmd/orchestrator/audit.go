package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/api"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
)

// What is in force, and what operators did: status and audit.

func statusCommand() *command {
	return apiCommand("status", "", "say what is in force: pauses, freeze windows, exclusions, the guard, readiness, replicas", func(fs *flagSet, af *apiFlags) func(*runEnv, *api.Client) error {
		return func(env *runEnv, c *api.Client) error {
			st, err := c.Status(env.ctx)
			if err != nil {
				return apiError(err)
			}
			return af.print(env.stdout, st, func(w io.Writer) error { return writeStatus(w, st) })
		}
	})
}

func writeStatus(w io.Writer, st *api.Status) error {
	fmt.Fprintf(w, "readiness:\t%s\n", st.Readiness)
	if st.PublicURL != "" {
		fmt.Fprintf(w, "page:\t%s\n", strings.TrimRight(st.PublicURL, "/")+"/ui/")
	}
	guard := "none"
	if st.GuardLimit > 0 {
		guard = fmt.Sprintf("a cascade of more than %d members waits for an approval", st.GuardLimit)
	}
	fmt.Fprintf(w, "guard:\t%s\n", guard)
	if st.DryRun {
		fmt.Fprintf(w, "dry run:\tdecisions are logged, nothing is written to TFE\n")
	}
	replicas := "none holds a cascade now (idle replicas are not seen)"
	if len(st.Reconciling) > 0 {
		replicas = strings.Join(st.Reconciling, ", ") + " (those holding a cascade now; idle replicas are not seen)"
	}
	fmt.Fprintf(w, "answered by:\t%s\n", st.Instance)
	fmt.Fprintf(w, "replicas:\t%s\n", replicas)
	fmt.Fprintf(w, "audit kept:\t%s\n", st.AuditRetention)
	fmt.Fprintln(w)
	if err := writePauses(w, &api.Controls{Paused: st.Paused}); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(st.Freezes) == 0 {
		fmt.Fprintln(w, "no freeze windows")
	} else {
		fmt.Fprintln(w, "FREEZE\tFROM\tTO\tSTATE\tBY\tWHY")
		for _, f := range st.Freezes {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", orEverywhere(f.Organization), formatTime(f.Start), formatTime(f.End),
				strings.ReplaceAll(f.State, "_", " "), f.By, oneLine(f.Why))
		}
	}
	fmt.Fprintln(w)
	if len(st.Exclusions) == 0 {
		fmt.Fprintln(w, "no exclusions")
	} else {
		fmt.Fprintln(w, "EXCLUDED\tIN\tSINCE\tBY\tWHY")
		for _, x := range st.Exclusions {
			what := "workspace " + x.Name
			if x.Tag != "" {
				what = "tag " + x.Tag
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", what, orEverywhere(x.Organization), formatTime(x.At), x.By, oneLine(x.Why))
		}
	}
	return nil
}

func orEverywhere(org string) string {
	if org == "" {
		return "everywhere"
	}
	return org
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func auditCommand() *command {
	return apiCommand("audit", "", "list what operators did (pauses, resumes, cancels, retries, approvals, freezes, exclusions), newest first, with who and why", func(fs *flagSet, af *apiFlags) func(*runEnv, *api.Client) error {
		var o api.AuditOptions
		var since string
		fs.stringVar(&o.Organization, "organization", "", "", "only what concerns this organization")
		fs.stringVar(&o.Cascade, "cascade", "", "", "only what concerns this cascade (by ID)")
		fs.stringVar(&since, "since", "", "", "only since: a duration (24h) or a time (2026-11-23T10:00:00Z)")
		fs.intVar(&o.Limit, "limit", "", 50, "at most this many (1 to 1000)")
		return func(env *runEnv, c *api.Client) error {
			if o.Limit < 1 || o.Limit > 1000 {
				return usagef("--limit must be from 1 to 1000, not %d", o.Limit)
			}
			if o.Organization != "" {
				if err := organizationName(o.Organization); err != nil {
					return usagef("--organization %q: %v", o.Organization, err)
				}
			}
			if o.Cascade != "" && !api.ValidCascadeID(o.Cascade) {
				return usagef("--cascade %q: want a cascade ID (c-run-…)", o.Cascade)
			}
			if since != "" {
				var err error
				if o.Since, err = parseSince(since, time.Now()); err != nil {
					return err
				}
			}
			recs, err := c.Audit(env.ctx, o)
			if err != nil {
				return apiError(err)
			}
			return af.print(env.stdout, api.AuditTrail{Records: recs}, func(w io.Writer) error { return writeAudit(w, recs) })
		}
	})
}

func writeAudit(w io.Writer, recs []dispatcher.AuditRecord) error {
	if len(recs) == 0 {
		fmt.Fprintln(w, "(no audit records)")
		return nil
	}
	fmt.Fprintln(w, "AT\tBY\tACTION\tCONCERNS\tWHY\tCHANGE")
	for _, r := range recs {
		var concerns []string
		if r.Organization != "" {
			concerns = append(concerns, r.Organization)
		}
		if r.Cascade != "" {
			concerns = append(concerns, r.Cascade)
		}
		if r.Workspace != "" {
			concerns = append(concerns, r.Workspace)
		}
		if len(concerns) == 0 {
			concerns = []string{"everywhere"}
		}
		change := r.After
		if r.Before != "" {
			change = r.Before + " → " + r.After
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", formatTime(r.At), r.By, strings.ReplaceAll(r.Action, "_", " "),
			strings.Join(concerns, "/"), oneLine(r.Why), oneLine(change))
	}
	return nil
}
