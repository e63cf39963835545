package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// demo --keep-serving ends with what to paste: the exports that point the
// CLI and go-tfe tools at the demo's daemon and simulator, commands, and
// the page's link to the cascade. Pasted as they are, they work. The
// demo's daemon logs at --log-level.
func TestDemoKeepServing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"demo", "--scenario", "testdata/demo-small.yaml", "--picture", "", "--no-color", "--keep-serving",
			"--log-level", "info"}, env(nil), &stdout, &stderr)
	}()
	var link []string
	testutil.WaitFor(t, "the demo to print the page's link to the cascade", 2*time.Minute, func() bool {
		link = deepLink.FindStringSubmatch(stdout.String())
		return link != nil
	})
	out := stdout.String()

	vars := map[string]string{}
	var commands [][]string
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		if args, ok := strings.CutPrefix(line, "go run ./cmd/orchestrator "); ok {
			commands = append(commands, strings.Fields(args))
		}
	}
	for _, k := range []string{"ORCHESTRATOR_SERVER", "ORCHESTRATOR_API_TOKEN", "TFE_ADDRESS", "TFE_TOKEN"} {
		if vars[k] == "" {
			t.Errorf("the demo does not export %s:\n%s", k, out)
		}
	}
	if vars["ORCHESTRATOR_SERVER"] != link[1] {
		t.Errorf("the link %s is not on the exported server %s", link[0], vars["ORCHESTRATOR_SERVER"])
	}
	if len(commands) != 2 {
		t.Fatalf("want two commands to paste, got %q:\n%s", commands, out)
	}
	code, got, errOut := runCmd(t, vars, commands[0]...)
	if code != exitOK || !strings.Contains(got, "cascade "+link[2]+" from network in acme: done (applied)") {
		t.Errorf("%q with the exports: exit %d\n%s%s", commands[0], code, got, errOut)
	}
	code, got, errOut = runCmd(t, vars, commands[1]...)
	if code != exitOK || !strings.Contains(got, "network → app") {
		t.Errorf("%q with the exports: exit %d\n%s%s", commands[1], code, got, errOut)
	}
	res, err := http.Get(link[1] + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("the page: %d", res.StatusCode)
	}

	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("demo: exit %d\n%s%s", code, out, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("the demo did not stop")
	}
	logs := stderr.String()
	if !strings.Contains(logs, "INFO") || !strings.Contains(logs, "serving") || !logTimeUTC.MatchString(logs) {
		t.Errorf("--log-level info shows no info logs of the daemon, with RFC 3339 UTC times:\n%s", logs)
	}
}

var (
	deepLink   = regexp.MustCompile(`(http://[0-9.:]+)/ui/#(c-run-\S+)`)
	logTimeUTC = regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\s`)
)
