package demo_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/demo"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// The shipped demo scenario runs to the end and its expectations hold.
func TestShippedScenario(t *testing.T) {
	sc, err := demo.LoadScenario("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	picture := filepath.Join(t.TempDir(), "cascade.mmd")
	var out lockedBuffer
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	type result struct {
		rep *demo.Report
		err error
	}
	ran := make(chan result, 1)
	go func() {
		rep, err := demo.Run(ctx, demo.Options{Scenario: sc, Out: &out, Picture: picture, KeepServing: true})
		ran <- result{rep, err}
	}()
	// Kept serving after the summary, the page it printed answers, and the
	// token it printed signs in with the operate role.
	var page []string
	testutil.WaitFor(t, "the demo to say its page stays up", time.Minute, func() bool {
		page = pageLine.FindStringSubmatch(out.String())
		return page != nil && strings.Contains(out.String(), "stay up at")
	})
	checkPage(t, page[1], page[2])
	stop()
	res := <-ran
	rep, err := res.rep, res.err
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if len(rep.Failures) > 0 {
		t.Fatalf("expectations failed: %v\n%s", rep.Failures, out.String())
	}
	for _, want := range []string{"WORKSPACE", "WAITED FOR", "cluster, dns", "on run-trigger cycle app → db → app", "alerts", "done: incomplete",
		"waits for a person to confirm it", "a person reviewed run", "approved by a person", "taken as its run",
		"outputs changed: vpc.vpc_id", "logs applied, none of its 1 output changed", "1 run(s) saved"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	pic, err := os.ReadFile(picture)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pic), "flowchart LR") || !strings.Contains(string(pic), `["apps<br/>applied"]:::applied`) {
		t.Errorf("picture:\n%s", pic)
	}
}

var pageLine = regexp.MustCompile(`web page at (http://\S+/ui/): sign in with the operate token (\S+)`)

// checkPage loads the page and signs in as the page does.
func checkPage(t *testing.T, url, token string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "Sign in") {
		t.Errorf("GET %s: %d\n%s", url, res.StatusCode, body)
	}
	req, _ := http.NewRequest("GET", strings.TrimSuffix(url, "/ui/")+"/api/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"operate"`) {
		t.Errorf("whoami with the printed token: %d %s", res.StatusCode, body)
	}
}

// lockedBuffer is written by the demo while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A scenario whose expectations do not hold is reported as such.
func TestFailedExpectations(t *testing.T) {
	sc, err := demo.LoadScenario("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Expect.Applied = append(sc.Expect.Applied, "payments")
	sc.Expect.Alerts = append(sc.Expect.Alerts, "dispatch_failed")
	var out bytes.Buffer
	rep, err := demo.Run(context.Background(), demo.Options{Scenario: sc, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) != 2 {
		t.Errorf("got failures %v, want payments not applied and no dispatch_failed alert", rep.Failures)
	}
}

func TestBadScenario(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown field": "organization: a\nroot: x\ncolour: red\n",
		"no root":       "organization: a\n",
		"bad budget":    "organization: a\nroot: x\nwatchdog_budgets: [\"lunch=1h\"]\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := demo.LoadScenario(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
