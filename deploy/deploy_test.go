// Package deploy holds the deployment files; this test checks that they
// parse and say what the daemon expects.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"
)

func docs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseDocs(t, path, b)
}

// parseDocs decodes the YAML documents of b, leaving out empty ones.
func parseDocs(t *testing.T, path string, b []byte) []map[string]any {
	t.Helper()
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
	pod := get(dep, "spec", "template", "spec")
	if get(pod, "securityContext", "runAsNonRoot") != true {
		t.Error("the orchestrator may run as root")
	}
	refs := checkOrchestrator(t, "Deployment/tfe-orchestrator", pod, readServeConfig(t))
	for env, key := range map[string]string{"ORCHESTRATOR_WEBHOOK_TOKEN": "webhook-token", "TFE_TOKEN": "tfe-token",
		"ORCHESTRATOR_ALERT_SLACK_URL": "alert-slack-url", "ORCHESTRATOR_ALERT_WEBHOOK_URL": "alert-webhook-url",
		"ORCHESTRATOR_API_READ_TOKEN": "api-read-token", "ORCHESTRATOR_API_OPERATE_TOKEN": "api-operate-token"} {
		if got := refs[env]; got != (secretRef{"tfe-orchestrator", key}) {
			t.Errorf("$%s comes from %v, want the Secret's %s", env, got, key)
		}
	}
	// The optional keys stay optional: a Secret made before they existed
	// still starts the pods.
	for _, e := range asList(get(container(pod, "orchestrator"), "env")) {
		if key, _ := get(e, "valueFrom", "secretKeyRef", "key").(string); key != "webhook-token" && key != "tfe-token" && key != "" &&
			get(e, "valueFrom", "secretKeyRef", "optional") != true {
			t.Errorf("$%s needs the Secret's %s, an optional key", get(e, "name"), key)
		}
	}
	secret := docs(t, "kubernetes/secret.example.yaml")[0]
	for _, ref := range refs {
		if get(secret, "stringData", ref.key) == nil {
			t.Errorf("secret.example.yaml has no %s", ref.key)
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

// sourceText is the daemon's Go source, tests left out.
func sourceText(t *testing.T) string {
	var b strings.Builder
	for _, dir := range []string{"../internal", "../cmd"} {
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
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
	for _, want := range []string{"CGO_ENABLED=0 go build -trimpath", "./cmd/orchestrator", "distroless/static", "COPY examples /examples",
		// Non-root by number (Kubernetes checks runAsNonRoot against it), and
		// a data directory that user owns, so a volume there is writable.
		"USER 65532:65532", "RUN mkdir -p /out/data", "COPY --from=build --chown=65532:65532 --chmod=0700 /out/data /data", "VOLUME /data"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	ignore, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatalf("no .dockerignore at the root of the build context: %v", err)
	}
	patterns := strings.Fields(string(ignore))
	for _, want := range []string{".git", "/data", "*.nk", "deploy/kubernetes/secret.yaml"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}

// podSpecs returns the pod templates of the workloads, by kind/name.
func podSpecs(objects map[string]map[string]any) map[string]any {
	out := map[string]any{}
	for key, o := range objects {
		switch o["kind"] {
		case "Deployment", "StatefulSet", "DaemonSet", "Job":
			out[key] = get(o, "spec", "template", "spec")
		}
	}
	return out
}

func kubernetesObjects(t *testing.T) map[string]map[string]any {
	t.Helper()
	objects := map[string]map[string]any{}
	kust := docs(t, "kubernetes/kustomization.yaml")[0]
	for _, r := range get(kust, "resources").([]any) {
		for _, d := range docs(t, filepath.Join("kubernetes", r.(string))) {
			objects[d["kind"].(string)+"/"+get(d, "metadata", "name").(string)] = d
		}
	}
	return objects
}

// Every workload passes the Kubernetes "restricted" Pod Security Standard.
func TestPodSecurityRestricted(t *testing.T) {
	objects := kubernetesObjects(t)
	if n := len(podSpecs(objects)); n < 2 {
		t.Fatalf("found %d workloads, want the orchestrator and NATS", n)
	}
	checkRestricted(t, objects)
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// NATS admits only the orchestrator and the operator's labelled tools to its
// client port, and only its own pods to the cluster port; the
// orchestrator's HTTP port admits only listed sources.
func TestNetworkPolicies(t *testing.T) {
	objects := kubernetesObjects(t)
	checkNetworkPolicies(t, objects, policyWant{
		nats: "nats", orchestrator: "tfe-orchestrator",
		natsSelector: []string{"app.kubernetes.io/name=nats"},
		orchSelector: []string{"app.kubernetes.io/name=tfe-orchestrator"},
		natsClients:  []string{"app.kubernetes.io/name=tfe-orchestrator", "tfe-orchestrator.io/nats-client=true"},
		natsCluster:  []string{"app.kubernetes.io/name=nats"},
	})
	if pdb := objects["PodDisruptionBudget/nats"]; pdb == nil || get(pdb, "spec", "maxUnavailable") != 1 {
		t.Error("no PodDisruptionBudget keeps two NATS nodes up")
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// natsConfig parses a NATS configuration with the server's own parser,
// with the environment the pods give it.
func natsConfig(t *testing.T, conf string, env map[string]string) *server.Options {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("the NATS configuration does not parse: %v", err)
	}
	return opts
}

// The Kubernetes NATS admits one NKey user whose public key comes from the
// Secret, and the orchestrator signs in with the seed from the same Secret.
func TestKubernetesNATSAuthentication(t *testing.T) {
	checkNATSAuthentication(t, kubernetesObjects(t), natsWant{configMap: "nats-config", statefulSet: "nats", service: "nats",
		deployment: "tfe-orchestrator", secret: "tfe-orchestrator", replicas: 3}, readServeConfig(t))
	secret := docs(t, "kubernetes/secret.example.yaml")[0]
	for _, key := range []string{"nats-nkey-seed", "nats-nkey-public"} {
		if get(secret, "stringData", key) == nil {
			t.Errorf("secret.example.yaml has no %s", key)
		}
	}
}

// The compose trial's NATS admits one user, and the orchestrators sign in
// as that user.
func TestComposeNATSAuthentication(t *testing.T) {
	services := get(docs(t, "compose.yaml")[0], "services").(map[string]any)
	natsEnv := asMap(get(services["nats1"], "environment"))
	conf, err := os.ReadFile("nats/nats-cluster.conf")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for k, v := range natsEnv {
		env[k] = v.(string)
	}
	opts := natsConfig(t, string(conf), env)
	if len(opts.Users) != 1 || len(opts.Nkeys) != 0 || opts.Users[0].Username == "" || opts.Users[0].Password == "" {
		t.Fatalf("NATS admits %d users and %d NKey users, want one user with a password", len(opts.Users), len(opts.Nkeys))
	}
	for _, name := range []string{"orchestrator-1", "orchestrator-2"} {
		e := asMap(get(services[name], "environment"))
		if e["NATS_USER"] != opts.Users[0].Username || e["NATS_PASSWORD"] != opts.Users[0].Password {
			t.Errorf("%s does not sign in as the NATS user", name)
		}
	}
}

// The NATS the deploy files run is the nats-server the orchestrator embeds.
func TestOneNATSVersion(t *testing.T) {
	want := natsImage(t)
	values := docs(t, "helm/orchestrator/values.yaml")[0]
	images := map[string]any{
		"compose x-nats":         get(docs(t, "compose.yaml")[0], "x-nats", "image"),
		"Kubernetes StatefulSet": get(kubernetesObjects(t)["StatefulSet/nats"], "spec", "template", "spec", "containers", 0, "image"),
		"Helm chart values":      fmt.Sprintf("%v:%v", get(values, "nats", "image", "repository"), get(values, "nats", "image", "tag")),
	}
	for where, image := range images {
		if image != want {
			t.Errorf("%s runs %v, want %s (go.mod)", where, image, want)
		}
	}
}

// natsImage is the NATS image of the nats-server version in go.mod.
func natsImage(t *testing.T) string {
	t.Helper()
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github\.com/nats-io/nats-server/v2 v(\d+\.\d+\.\d+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod does not require nats-server")
	}
	return "nats:" + string(m[1])
}
