package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

const dashboardFile = "grafana/orchestrator-dashboard.json"

// dashboardMetrics are what the dashboard must show.
var dashboardMetrics = []string{
	"orchestrator_cascades_started_total", "orchestrator_cascades_finished_total", "orchestrator_cascades_open",
	"orchestrator_cascade_members", "orchestrator_run_events_handled_total", "orchestrator_webhooks_total",
	"orchestrator_tfe_requests_total", "orchestrator_tfe_token_valid", "orchestrator_alerts_total", "orchestrator_alerts_raised_total",
	"orchestrator_watchdog_stuck_runs", "orchestrator_watchdog_force_cancels_total",
	"orchestrator_cascade_look_duration_seconds", "orchestrator_jetstream_connected", "orchestrator_build_info",
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    struct{ X, Y, W, H int }
	Panels     []panel `json:"panels"` // of a collapsed row
	Targets    []struct {
		Datasource *datasource `json:"datasource"`
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
	} `json:"targets"`
}

type datasource struct{ Type, UID string }

func readDashboard(t *testing.T) (dashboard, []byte) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d, b
}

// The dashboard imports anywhere (its data source is a variable) and its
// panels are laid out without overlap.
func TestDashboardImportable(t *testing.T) {
	d, _ := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Error("the dashboard lacks a uid, a title or a schemaVersion")
	}
	var dsVar bool
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Name == "datasource" && string(v.Query) == `"prometheus"` {
			dsVar = true
		} else if v.Datasource != nil && v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s queries data source %q, not ${datasource}", v.Name, v.Datasource.UID)
		}
	}
	if !dsVar {
		t.Error("the dashboard has no Prometheus data source variable named datasource")
	}
	ids := map[int]bool{}
	var boxes []panel
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q is placed at %+v, outside the 24-column grid", p.Title, g)
		}
		for _, b := range boxes {
			if g.X < b.GridPos.X+b.GridPos.W && b.GridPos.X < g.X+g.W && g.Y < b.GridPos.Y+b.GridPos.H && b.GridPos.Y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", p.Title, b.Title)
			}
		}
		boxes = append(boxes, p)
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if q.Datasource != nil && q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: query %s does not use the datasource variable", p.Title, q.RefID)
			}
			if q.Expr == "" || q.RefID == "" || refs[q.RefID] {
				t.Errorf("panel %q: query %q has no expression, or no refId of its own", p.Title, q.RefID)
			}
			refs[q.RefID] = true
			if err := balanced(q.Expr); err != nil {
				t.Errorf("panel %q: %v in %s", p.Title, err, q.Expr)
			}
			if !strings.Contains(q.Expr, `namespace=~"$namespace"`) {
				t.Errorf("panel %q: query %s does not follow the namespace variable", p.Title, q.RefID)
			}
		}
	}
}

func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// balanced reports unbalanced brackets and quotes in a query.
func balanced(expr string) error {
	var stack []rune
	inQuote := false
	for _, r := range expr {
		switch {
		case r == '"':
			inQuote = !inQuote
		case inQuote:
		case strings.ContainsRune("([{", r):
			stack = append(stack, r)
		case strings.ContainsRune(")]}", r):
			open := map[rune]rune{')': '(', ']': '[', '}': '{'}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return fmt.Errorf("unbalanced %c", r)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if inQuote || len(stack) > 0 {
		return fmt.Errorf("unclosed %q", string(stack))
	}
	return nil
}

// Every metric the dashboard queries is one the daemon registers, so that the dashboard cannot drift from the code; and it
// shows the metrics an operator needs.
func TestDashboardMetrics(t *testing.T) {
	_, raw := readDashboard(t)
	src := sourceText(t)
	defined := func(name string) bool {
		return strings.Contains(src, `"`+name+`"`)
	}
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\borchestrator_[a-z0-9_]+`).FindAllString(string(raw), -1) {
		if !defined(m) {
			base := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(m, "")
			if base == m || !defined(base) {
				t.Errorf("the dashboard queries %s, which the code does not register", m)
				continue
			}
			m = base
		}
		used[m] = true
	}
	for _, m := range dashboardMetrics {
		if !used[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
}

// The chart ships the same dashboard (helm reads only files inside the chart).
func TestDashboardInChart(t *testing.T) {
	_, want := readDashboard(t)
	got, err := os.ReadFile("helm/orchestrator/dashboards/orchestrator-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("helm/orchestrator/dashboards/orchestrator-dashboard.json differs from %s: cp %[1]s helm/orchestrator/dashboards/", dashboardFile)
	}
}
