package demo

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
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

var stateColor = map[dispatcher.MemberState]string{
	dispatcher.Dispatching: cyan, dispatcher.Dispatched: cyan, dispatcher.Applied: green,
	dispatcher.NoChanges: green, dispatcher.Failed: red, dispatcher.Blocked: yellow, dispatcher.Skipped: yellow,
}

// member prints one workspace's state change.
func (p *printer) member(name string, st dispatcher.Status) {
	detail := ""
	switch st.State {
	case dispatcher.Dispatched:
		detail = "run " + st.RunID
	case dispatcher.Applied, dispatcher.Failed, dispatcher.NoChanges:
		detail = "run " + st.RunID + " " + st.RunStatus
	case dispatcher.Blocked, dispatcher.Skipped, dispatcher.Waiting:
		detail = st.Reason
	}
	p.line(fmt.Sprintf("%-14s %s %s", name, p.paint(stateColor[st.State], fmt.Sprintf("%-11s", st.State)), detail))
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
		if r.State == dispatcher.Blocked || r.State == dispatcher.Skipped {
			note = r.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Workspace, run, status, strings.Join(r.WaitedFor, ", "), dur, note)
	}
	_ = tw.Flush()
	fmt.Fprintf(p.w, "\n%s\n", p.paint(bold, fmt.Sprintf("%d alerts", len(rep.Alerts))))
	for _, a := range rep.Alerts {
		fmt.Fprintf(p.w, "  [%s] %s\n", a.Kind, a.Message)
	}
	fmt.Fprintln(p.w)
}
