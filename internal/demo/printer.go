package demo

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
)

// printer writes the demo's lines, with colour on a terminal.
type printer struct {
	w     io.Writer
	color bool
	start time.Time
	mu    sync.Mutex
}

const (
	reset  = "\x1b[0m"
	dim    = "\x1b[2m"
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	cyan   = "\x1b[36m"
	bold   = "\x1b[1m"
)

func (p *printer) paint(code, s string) string {
	if !p.color {
		return s
	}
	return code + s + reset
}

func (p *printer) line(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %s\n", p.paint(dim, fmt.Sprintf("%+7.2fs", time.Since(p.start).Seconds())), s)
}

func (p *printer) say(format string, args ...any) { p.line(fmt.Sprintf(format, args...)) }

// block writes lines as they are, without the time, to be pasted.
func (p *printer) block(lines ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\n%s\n\n", strings.Join(lines, "\n"))
}

var stateColor = map[cascade.State]string{
	cascade.Ready: cyan, cascade.Dispatching: cyan, cascade.Running: cyan, cascade.AwaitingApproval: bold,
	cascade.Applied: green, cascade.NoChanges: green, cascade.Failed: red, cascade.Blocked: yellow, cascade.Skipped: yellow,
}

// member prints one workspace's change.
func (p *printer) member(m dispatcher.MemberView) {
	detail := m.Reason
	switch m.State {
	case cascade.Running:
		how := "created by the cascade"
		if m.Adopted {
			how = "queued by TFE's run trigger, taken as its run"
		}
		detail = "run " + m.RunID + " " + m.RunStatus + " (" + how + ")"
		if m.Gate != "" {
			detail += "; " + m.Gate
		}
	case cascade.AwaitingApproval:
		detail = "run " + m.RunID + " planned: waits for a person to confirm it"
	case cascade.Applied, cascade.NoChanges, cascade.Failed:
		detail = "run " + m.RunID + " " + m.RunStatus
	}
	p.line(fmt.Sprintf("%-14s %s %s", m.Name, p.paint(stateColor[m.State], fmt.Sprintf("%-17s", m.State)), detail))
}

func (p *printer) alert(a alerts.Alert) {
	code := yellow
	if a.Severity == alerts.SeverityCritical {
		code = red
	}
	p.line(p.paint(code, "ALERT ["+a.Kind+"] ") + a.Message)
}

// summary prints the table of the cascade and the alerts raised.
func (p *printer) summary(rep *Report) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\n%s\n", p.paint(bold, "cascade "+rep.CascadeID))
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKSPACE\tRUN\tSTATUS\tWAITED FOR\tDURATION\tNOTE")
	for _, r := range rep.Rows {
		run, dur := r.RunID, ""
		if run == "" {
			run = "-"
		}
		if r.Duration > 0 {
			dur = r.Duration.Round(10 * time.Millisecond).String()
		}
		status := string(r.State)
		if r.RunStatus != "" && r.RunStatus != status {
			status += " (" + r.RunStatus + ")"
		}
		note := ""
		switch {
		case r.State == cascade.Blocked || r.State == cascade.Skipped:
			note = r.Reason
		case r.Approved:
			note = "approved by a person"
		case len(r.OutputsChanged) > 0:
			note = "outputs changed: " + strings.Join(r.OutputsChanged, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Workspace, run, status, strings.Join(r.WaitedFor, ", "), dur, note)
	}
	_ = tw.Flush()
	if rep.RunsSaved > 0 {
		fmt.Fprintf(p.w, "\n%d run(s) saved: no output of their upstreams changed\n", rep.RunsSaved)
	}
	fmt.Fprintf(p.w, "\n%s\n", p.paint(bold, fmt.Sprintf("%d alerts", len(rep.Alerts))))
	for _, a := range rep.Alerts {
		fmt.Fprintf(p.w, "  [%s] %s\n", a.Kind, a.Message)
	}
	fmt.Fprintln(p.w)
}
