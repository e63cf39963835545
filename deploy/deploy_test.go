// Package deploy holds the deployment files; this test checks that they
// parse and say what the daemon expects.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			out = append(out, d)
		}
	}
}

// get walks a decoded YAML document: get(d, "spec", "template", "spec").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			s, _ := v.([]any)
			if k >= len(s) {
				return nil
			}
			v = s[k]
		}
	}
	return v
}

func TestKubernetesObjects(t *testing.T) {
	objects := map[string]map[string]any{}
	kust := docs(t, "kubernetes/kustomization.yaml")[0]
	for _, r := range get(kust, "resources").([]any) {
		for _, d := range docs(t, filepath.Join("kubernetes", r.(string))) {
			kind, _ := d["kind"].(string)
			name, _ := get(d, "metadata", "name").(string)
			if d["apiVersion"] == nil || kind == "" || name == "" {
				t.Fatalf("%s: an object without apiVersion, kind or name", r)
			}
			objects[kind+"/"+name] = d
		}
	}
	for _, want := range []string{"Namespace/tfe-orchestrator", "Deployment/tfe-orchestrator", "Service/tfe-orchestrator",
		"ServiceMonitor/tfe-orchestrator", "PrometheusRule/tfe-orchestrator", "StatefulSet/nats", "ConfigMap/nats-config",
		"PodDisruptionBudget/tfe-orchestrator", "ServiceAccount/tfe-orchestrator"} {
		if objects[want] == nil {
			t.Errorf("missing %s", want)
		}
	}
	dep := objects["Deployment/tfe-orchestrator"]
	if r, _ := get(dep, "spec", "replicas").(int); r < 2 {
		t.Errorf("the orchestrator runs %d replicas, want at least 2", r)
	}
	c := get(dep, "spec", "template", "spec", "containers", 0)
	if get(c, "readinessProbe", "httpGet", "path") != "/readyz" || get(c, "livenessProbe", "httpGet", "path") != "/healthz" {
		t.Error("the orchestrator's probes are not /readyz and /healthz")
	}
	if get(c, "resources", "requests") == nil || get(c, "resources", "limits") == nil {
		t.Error("the orchestrator has no resource requests and limits")
	}
	if get(dep, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
		t.Error("the orchestrator may run as root")
	}
	secretEnv := map[string]bool{}
	for _, e := range get(c, "env").([]any) {
		if get(e, "valueFrom", "secretKeyRef", "name") == "tfe-orchestrator" {
			secretEnv[get(e, "name").(string)] = true
		}
		if v, _ := get(e, "value").(string); strings.Contains(strings.ToLower(get(e, "name").(string)), "token") && v != "" {
			t.Errorf("%s is set in plain text, not from the Secret", get(e, "name"))
		}
	}
	for _, want := range []string{"ORCHESTRATOR_WEBHOOK_TOKEN", "TFE_TOKEN"} {
		if !secretEnv[want] {
			t.Errorf("%s does not come from the Secret", want)
		}
	}
	sel := get(objects["ServiceMonitor/tfe-orchestrator"], "spec", "selector", "matchLabels", "app.kubernetes.io/name")
	if sel != get(objects["Service/tfe-orchestrator"], "metadata", "labels", "app.kubernetes.io/name") {
		t.Error("the ServiceMonitor does not select the Service")
	}
	// Every metric an alert rule uses is one the code registers.
	src := sourceText(t)
	metric := regexp.MustCompile(`orchestrator_[a-z_]+`)
	for _, g := range get(objects["PrometheusRule/tfe-orchestrator"], "spec", "groups").([]any) {
		for _, r := range get(g, "rules").([]any) {
			for _, m := range metric.FindAllString(get(r, "expr").(string), -1) {
				if !strings.Contains(src, `"`+m+`"`) {
					t.Errorf("rule %s uses %s, which the code does not register", get(r, "alert"), m)
				}
			}
		}
	}
}

func sourceText(t *testing.T) string {
	var b strings.Builder
	err := filepath.WalkDir("../internal", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		b.Write(src)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestComposeFile(t *testing.T) {
	d := docs(t, "compose.yaml")[0]
	services, _ := d["services"].(map[string]any)
	for _, want := range []string{"nats1", "nats2", "nats3", "tfesim", "orchestrator-1", "orchestrator-2"} {
		if services[want] == nil {
			t.Errorf("missing service %s", want)
		}
	}
	for _, name := range []string{"orchestrator-1", "orchestrator-2"} {
		env, _ := get(services[name], "environment").(map[string]any)
		if !strings.Contains(env["NATS_URL"].(string), "nats3") || env["ORCHESTRATOR_STREAM_REPLICAS"] != "3" {
			t.Errorf("%s does not use the three-node cluster with three stream replicas", name)
		}
	}
	for _, f := range []string{"nats/nats-cluster.conf", "compose-scenario.yaml"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("compose mounts %s: %v", f, err)
		}
	}
	sc := docs(t, "compose-scenario.yaml")[0]
	if get(sc, "organizations", 0, "notifications", 0, "url") != "http://orchestrator:8080/webhooks/tfe" {
		t.Error("the compose scenario does not notify the orchestrator replicas")
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0 go build -trimpath", "./cmd/orchestrator", "distroless/static", "USER nonroot", "COPY examples /examples"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
}
