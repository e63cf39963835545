package deploy

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The Helm chart (helm/orchestrator) is rendered by helm itself and the
// objects get the checks the plain manifests get.
//
// helm is a Go module: `go run helm.sh/helm/v3/cmd/helm@VERSION` builds it
// from the module proxy with helm's own go.mod, every module checked against
// the checksum database, and caches the executable after the first build.
// So the version is pinned here, in one place, and the project's go.mod
// takes none of helm's Kubernetes dependencies (a second go.mod with a tool
// directive would pin the same thing at the cost of a go.sum of some 300
// lines to keep). Where the toolchain cannot fetch or build helm, the tests
// skip, unless REQUIRE_HELM=1, as in CI (.ci/run).
const helmModule = "helm.sh/helm/v3/cmd/helm@v3.22.0"

const chartDir = "helm/orchestrator"

var helmReady struct {
	sync.Once
	err  error
	out  []byte
	took time.Duration
}

// runHelm runs helm with args in deploy/, with its homes in a temporary
// directory.
func runHelm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	if d, ok := t.Deadline(); ok { // fail with helm's output rather than a test timeout
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", helmModule}, args...)...)
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return stderr.Bytes(), err
	}
	return out, nil
}

// requireHelm skips the test when helm cannot be built here, or fails it
// when REQUIRE_HELM=1.
func requireHelm(t *testing.T) {
	t.Helper()
	helmReady.Do(func() {
		start := time.Now()
		helmReady.out, helmReady.err = runHelm(t, "version", "--short")
		helmReady.took = time.Since(start)
		if helmReady.err == nil {
			t.Logf("helm %s ready in %s (go run %s; the first run builds it)", bytes.TrimSpace(helmReady.out), helmReady.took.Round(time.Second), helmModule)
		}
	})
	if helmReady.err != nil {
		msg := "helm could not be built: go run " + helmModule + ": " + helmReady.err.Error() + "\n" + lastLines(helmReady.out, 10)
		if os.Getenv("REQUIRE_HELM") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg + "\n(set REQUIRE_HELM=1 to make this a failure)")
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// rendered is what helm template made of the chart.
type rendered struct {
	raw     []byte
	objects map[string]map[string]any // by kind/name
}

func renderChart(t *testing.T, release string, args ...string) rendered {
	t.Helper()
	out, err := runHelm(t, append([]string{"template", release, chartDir, "--namespace", "tfe-orchestrator"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, out)
	}
	r := rendered{raw: out, objects: map[string]map[string]any{}}
	for _, d := range parseDocs(t, "helm template", out) {
		kind, _ := d["kind"].(string)
		name, _ := get(d, "metadata", "name").(string)
		if d["apiVersion"] == nil || kind == "" || name == "" {
			t.Fatalf("helm template rendered an object without apiVersion, kind or name: %v", d)
		}
		if r.objects[kind+"/"+name] != nil {
			t.Errorf("helm template rendered %s/%s twice", kind, name)
		}
		r.objects[kind+"/"+name] = d
	}
	return r
}

// chartWant is what one set of values must render.
type chartWant struct {
	release, fullname   string
	replicas            int
	natsReplicas        int // 0: an external NATS
	streamReplicas      string
	secret              string               // the Secret the orchestrator's files come from
	files               map[string]secretRef // variable → Secret key, all of them
	monitoring          bool                 // ServiceMonitor, PrometheusRule and dashboard
	dashboardNamespace  string
	createdSecretValues map[string]string // key → value, when the chart makes the Secret
}

func TestHelmChart(t *testing.T) {
	requireHelm(t)
	serve := readServeConfig(t)
	plain := kubernetesObjects(t)
	cases := []struct {
		name   string
		values string // in testdata/helm; "" for the defaults
		want   chartWant
	}{
		{"defaults", "", chartWant{
			release: "tfe-orchestrator", fullname: "tfe-orchestrator", replicas: 2, natsReplicas: 3, streamReplicas: "3",
			secret: "tfe-orchestrator",
			files: map[string]secretRef{
				"TFE_TOKEN_FILE":                  {"tfe-orchestrator", "tfe-token"},
				"ORCHESTRATOR_WEBHOOK_TOKEN_FILE": {"tfe-orchestrator", "webhook-token"},
				"NATS_NKEY":                       {"tfe-orchestrator", "nats-nkey-seed"},
			},
		}},
		{"external NATS, 3 replicas, API and alerts, monitoring", "external-nats.yaml", chartWant{
			release: "tfe-orchestrator", fullname: "tfe-orchestrator", replicas: 3, streamReplicas: "3",
			secret: "orchestrator-secrets",
			files: map[string]secretRef{
				"TFE_TOKEN_FILE":                      {"orchestrator-secrets", "tfe-token"},
				"ORCHESTRATOR_WEBHOOK_TOKEN_FILE":     {"orchestrator-secrets", "webhook-token"},
				"ORCHESTRATOR_API_READ_TOKEN_FILE":    {"orchestrator-secrets", "api-read-token"},
				"ORCHESTRATOR_API_OPERATE_TOKEN_FILE": {"orchestrator-secrets", "api-operate-token"},
				"ORCHESTRATOR_ALERT_SLACK_URL_FILE":   {"orchestrator-secrets", "alert-slack-url"},
				"ORCHESTRATOR_ALERT_WEBHOOK_URL_FILE": {"orchestrator-secrets", "alert-webhook-url"},
				"NATS_CREDS":                          {"nats-credentials", "orchestrator.creds"},
				"NATS_TLS_CA":                         {"nats-ca", "ca.crt"},
			},
			monitoring: true, dashboardNamespace: "monitoring",
		}},
		{"Secret from values, 5 NATS nodes", "secret-from-values.yaml", chartWant{
			release: "prod", fullname: "prod-tfe-orchestrator", replicas: 3, natsReplicas: 5, streamReplicas: "3",
			secret: "prod-tfe-orchestrator",
			files: map[string]secretRef{
				"TFE_TOKEN_FILE":                   {"prod-tfe-orchestrator", "tfe-token"},
				"ORCHESTRATOR_WEBHOOK_TOKEN_FILE":  {"prod-tfe-orchestrator", "webhook-token"},
				"ORCHESTRATOR_API_READ_TOKEN_FILE": {"prod-tfe-orchestrator", "api-read-token"},
				"NATS_NKEY":                        {"prod-tfe-orchestrator", "nats-nkey-seed"},
			},
			createdSecretValues: map[string]string{
				"tfe-token":        "sentinel-tfe-token",
				"webhook-token":    "sentinel-webhook-token-1\nsentinel-webhook-token-2",
				"api-read-token":   "oncall:sentinel-read-token",
				"nats-nkey-seed":   "SUSENTINELSEED",
				"nats-nkey-public": "USENTINELPUBLIC",
			},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.values != "" {
				args = []string{"-f", filepath.Join("testdata", "helm", tc.values)}
			}
			r := renderChart(t, tc.want.release, args...)
			checkChart(t, r, tc.want, serve, plain)
		})
	}
}

func checkChart(t *testing.T, r rendered, want chartWant, serve serveConfig, plain map[string]map[string]any) {
	objects := r.objects
	name := want.fullname
	nats := name + "-nats"
	required := []string{"Deployment/" + name, "Service/" + name, "ServiceAccount/" + name, "NetworkPolicy/" + name, "PodDisruptionBudget/" + name}
	if want.natsReplicas > 0 {
		required = append(required, "StatefulSet/"+nats, "ConfigMap/"+nats+"-config", "Service/"+nats, "Service/"+nats+"-cluster",
			"PodDisruptionBudget/"+nats, "NetworkPolicy/"+nats)
	}
	if want.monitoring {
		required = append(required, "ServiceMonitor/"+name, "PrometheusRule/"+name, "ConfigMap/"+name+"-dashboard")
	}
	if want.createdSecretValues != nil {
		required = append(required, "Secret/"+want.secret)
	}
	var got []string
	for key, o := range objects {
		got = append(got, key)
		ns := get(o, "metadata", "namespace")
		if ns != "tfe-orchestrator" && (key != "ConfigMap/"+name+"-dashboard" || ns != want.dashboardNamespace) {
			t.Errorf("%s is in namespace %v, not the release's", key, ns)
		}
		if get(o, "metadata", "labels", "app.kubernetes.io/instance") != want.release {
			t.Errorf("%s is not labelled with its release", key)
		}
	}
	slices.Sort(got)
	slices.Sort(required)
	if !slices.Equal(got, required) {
		t.Errorf("rendered %v\nwant %v", got, required)
	}

	checkRestricted(t, objects)
	dep := objects["Deployment/"+name]
	if get(dep, "spec", "replicas") != want.replicas {
		t.Errorf("the orchestrator runs %v replicas, want %d", get(dep, "spec", "replicas"), want.replicas)
	}
	pod := get(dep, "spec", "template", "spec")
	c := container(pod, "orchestrator")
	refs := checkOrchestrator(t, "Deployment/"+name, pod, serve)
	if !reflect.DeepEqual(refs, want.files) {
		t.Errorf("the orchestrator's secrets come from\n%v\nwant\n%v", refs, want.files)
	}
	if got := envValue(c, "ORCHESTRATOR_STREAM_REPLICAS"); got != want.streamReplicas {
		t.Errorf("ORCHESTRATOR_STREAM_REPLICAS is %q, want %s", got, want.streamReplicas)
	}
	if pdb := objects["PodDisruptionBudget/"+name]; get(pdb, "spec", "minAvailable") != 1 {
		t.Error("the orchestrator's PodDisruptionBudget does not keep one replica up")
	}

	// The same hardening as the plain manifests.
	plainPod := get(plain["Deployment/tfe-orchestrator"], "spec", "template", "spec")
	for _, field := range []string{"securityContext", "automountServiceAccountToken"} {
		if field == "automountServiceAccountToken" {
			if get(pod, field) != false && get(objects["ServiceAccount/"+name], field) != false {
				t.Error("the orchestrator's pods get a service account token")
			}
			continue
		}
		if !reflect.DeepEqual(get(pod, field), get(plainPod, field)) {
			t.Errorf("the orchestrator's pod %s is %v, the plain manifests' %v", field, get(pod, field), get(plainPod, field))
		}
	}
	for _, field := range []string{"securityContext", "readinessProbe", "livenessProbe", "image"} {
		if got, want := get(c, field), get(container(plainPod, "orchestrator"), field); !reflect.DeepEqual(got, want) {
			t.Errorf("the orchestrator's %s is %v, the plain manifests' %v", field, got, want)
		}
	}

	if want.natsReplicas > 0 {
		checkNATSAuthentication(t, objects, natsWant{configMap: nats + "-config", statefulSet: nats, service: nats,
			deployment: name, secret: want.secret, replicas: want.natsReplicas}, serve)
		checkNetworkPolicies(t, objects, policyWant{
			nats: nats, orchestrator: name,
			natsSelector: []string{"app.kubernetes.io/instance=" + want.release, "app.kubernetes.io/name=nats"},
			orchSelector: []string{"app.kubernetes.io/instance=" + want.release, "app.kubernetes.io/name=tfe-orchestrator"},
			natsClients: []string{"app.kubernetes.io/instance=" + want.release, "app.kubernetes.io/name=tfe-orchestrator",
				"tfe-orchestrator.io/nats-client=true"},
			natsCluster: []string{"app.kubernetes.io/instance=" + want.release, "app.kubernetes.io/name=nats"},
		})
		sts := objects["StatefulSet/"+nats]
		if got, want := get(sts, "spec", "template", "spec", "containers", 0, "image"), natsImage(t); got != want {
			t.Errorf("the bundled NATS runs %v, want %s (go.mod)", got, want)
		}
		plainNATS := get(plain["StatefulSet/nats"], "spec", "template", "spec")
		natsPod := get(sts, "spec", "template", "spec")
		for _, field := range []string{"securityContext", "automountServiceAccountToken"} {
			if !reflect.DeepEqual(get(natsPod, field), get(plainNATS, field)) {
				t.Errorf("the NATS pod's %s is %v, the plain manifests' %v", field, get(natsPod, field), get(plainNATS, field))
			}
		}
		for _, field := range []string{"securityContext", "readinessProbe", "livenessProbe", "args"} {
			if got, want := get(natsPod, "containers", 0, field), get(plainNATS, "containers", 0, field); !reflect.DeepEqual(got, want) {
				t.Errorf("the NATS container's %s is %v, the plain manifests' %v", field, got, want)
			}
		}
		if pdb := objects["PodDisruptionBudget/"+nats]; get(pdb, "spec", "maxUnavailable") != 1 {
			t.Error("no PodDisruptionBudget keeps all NATS nodes but one up")
		}
	} else {
		checkNetworkPolicies(t, objects, policyWant{orchestrator: name,
			orchSelector: []string{"app.kubernetes.io/instance=" + want.release, "app.kubernetes.io/name=tfe-orchestrator"}})
		if url := envValue(c, "NATS_URL"); !strings.HasPrefix(url, "nats://") || strings.Contains(url, want.fullname) {
			t.Errorf("NATS_URL is %q, want the external NATS", url)
		}
	}

	if want.monitoring {
		sm := objects["ServiceMonitor/"+name]
		svc := objects["Service/"+name]
		if !isSubset(matchLabels(get(sm, "spec", "selector")), selectorLabels(get(svc, "metadata", "labels"))) {
			t.Error("the ServiceMonitor does not select the Service")
		}
		if get(sm, "spec", "endpoints", 0, "port") != get(svc, "spec", "ports", 0, "name") {
			t.Error("the ServiceMonitor scrapes a port the Service does not name")
		}
		if got, want := get(objects["PrometheusRule/"+name], "spec", "groups"), get(plain["PrometheusRule/tfe-orchestrator"], "spec", "groups"); !reflect.DeepEqual(got, want) {
			t.Error("the chart's PrometheusRule differs from kubernetes/monitoring.yaml's")
		}
		dashboard, err := os.ReadFile("grafana/orchestrator-dashboard.json")
		if err != nil {
			t.Fatal(err)
		}
		cm := objects["ConfigMap/"+name+"-dashboard"]
		if get(cm, "data", "orchestrator-dashboard.json") != strings.TrimSuffix(string(dashboard), "\n") {
			t.Error("the dashboard ConfigMap does not hold grafana/orchestrator-dashboard.json")
		}
		if get(cm, "metadata", "labels", "grafana_dashboard") != "1" {
			t.Error("the dashboard ConfigMap lacks the Grafana sidecar's label")
		}
	}

	// Secrets are never in the rendered objects but a Secret the values asked
	// the chart to make.
	for key, value := range want.createdSecretValues {
		secret := objects["Secret/"+want.secret]
		b64, _ := get(secret, "data", key).(string)
		if got, _ := base64.StdEncoding.DecodeString(b64); string(got) != value {
			t.Errorf("the Secret's %s is %q, want %q", key, got, value)
		}
		for _, line := range strings.Split(value, "\n") {
			if bytes.Contains(r.raw, []byte(line)) {
				t.Errorf("the rendered chart holds the secret %q in plain text", line)
			}
		}
	}
	if want.createdSecretValues != nil {
		if len(asMap(get(objects["Secret/"+want.secret], "data"))) != len(want.createdSecretValues) {
			t.Errorf("the Secret holds %v, want the keys of %v", asMap(get(objects["Secret/"+want.secret], "data")), want.createdSecretValues)
		}
		if get(dep, "spec", "template", "metadata", "annotations", "checksum/secret") == nil {
			t.Error("a changed Secret does not roll the orchestrator's pods")
		}
	}
}

// isSubset says whether sub is a non-empty subset of set.
func isSubset(sub, set []string) bool {
	for _, s := range sub {
		if !slices.Contains(set, s) {
			return false
		}
	}
	return len(sub) > 0
}

// By default the chart reads the keys of the Secret kubernetes/secret.example.yaml
// makes, so one Secret serves both.
func TestHelmChartDefaultKeys(t *testing.T) {
	values := docs(t, filepath.Join(chartDir, "values.yaml"))[0]
	secret := docs(t, "kubernetes/secret.example.yaml")[0]
	for field, key := range asMap(get(values, "secret", "keys")) {
		if get(secret, "stringData", key.(string)) == nil {
			t.Errorf("the chart's secret.keys.%s is %s, which secret.example.yaml does not have", field, key)
		}
	}
}

// Values that cannot work are refused with a message saying why.
func TestHelmChartRefuses(t *testing.T) {
	requireHelm(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--set", "nats.streamReplicas=5"}, "cannot exceed the bundled cluster's nats.replicas"},
		{[]string{"--set", "nats.bundled=false"}, "nats.external.url is required"},
		{[]string{"--set-json", "networkPolicy.httpFrom=[]"}, "networkPolicy.httpFrom is empty"},
		{[]string{"--set", "secret.create=true"}, "secret.values.tfeToken is empty"},
		{[]string{"--set", "secret.create=true", "--set", "secret.values.tfeToken=x", "--set", "secret.values.webhookTokens=x",
			"--set", "secret.values.natsNKeySeed=x"}, "secret.values.natsNKeyPublic is empty"},
		{[]string{"--set", "extraEnv.TFE_TOKEN=x"}, "extraEnv.TFE_TOKEN is a secret"},
		{[]string{"--set", "extraEnv.NATS_URL=nats://elsewhere:4222"}, "extraEnv.NATS_URL is set by the chart"},
		{[]string{"--set", "replicas=3"}, "'replicas' not allowed"}, // values.schema.json: a misspelt value
		{[]string{"--set", "nats.replica=1"}, "'replica' not allowed"},
	} {
		out, err := runHelm(t, append([]string{"template", "tfe-orchestrator", chartDir}, tc.args...)...)
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("helm template %v: %v, want an error saying %q; got\n%s", tc.args, err, tc.want, lastLines(out, 5))
		}
	}
}

func TestHelmLint(t *testing.T) {
	requireHelm(t)
	for _, values := range []string{"", "external-nats.yaml", "secret-from-values.yaml", "ingress.yaml"} {
		args := []string{"lint", "--strict", chartDir}
		if values != "" {
			args = append(args, "-f", filepath.Join("testdata", "helm", values))
		}
		if out, err := runHelm(t, args...); err != nil {
			t.Errorf("helm %v: %v\n%s", args, err, out)
		}
	}
}

// The Ingress renders only when enabled: for ingress.host, with its class,
// annotations and TLS, the page's, the API's and the webhooks' paths to the
// Service's http port, and nothing else (not /metrics). Enabled without a
// host, the chart is refused.
func TestHelmIngress(t *testing.T) {
	requireHelm(t)
	const name = "Ingress/tfe-orchestrator"
	if ing := renderChart(t, "tfe-orchestrator").objects[name]; ing != nil {
		t.Errorf("an Ingress renders by default: %v", ing)
	}
	r := renderChart(t, "tfe-orchestrator", "-f", filepath.Join("testdata", "helm", "ingress.yaml"))
	ing := r.objects[name]
	if ing == nil {
		t.Fatalf("ingress.enabled renders no %s", name)
	}
	if get(ing, "apiVersion") != "networking.k8s.io/v1" || get(ing, "spec", "ingressClassName") != "nginx" ||
		get(ing, "metadata", "annotations", "cert-manager.io/cluster-issuer") != "letsencrypt" {
		t.Errorf("the Ingress's class or annotations are not the values': %v", ing)
	}
	if get(ing, "spec", "tls", 0, "secretName") != "orchestrator-tls" || get(ing, "spec", "tls", 0, "hosts", 0) != "orchestrator.example.com" {
		t.Errorf("the Ingress's TLS is not the values': %v", get(ing, "spec", "tls"))
	}
	if get(ing, "spec", "rules", 0, "host") != "orchestrator.example.com" {
		t.Errorf("the Ingress's host is %v", get(ing, "spec", "rules", 0, "host"))
	}
	port := get(r.objects["Service/tfe-orchestrator"], "spec", "ports", 0, "name")
	var paths []string
	for i := range len(asList(get(ing, "spec", "rules", 0, "http", "paths"))) {
		p := get(ing, "spec", "rules", 0, "http", "paths", i)
		paths = append(paths, get(p, "path").(string))
		if get(p, "pathType") != "Prefix" || get(p, "backend", "service", "name") != "tfe-orchestrator" || get(p, "backend", "service", "port", "name") != port {
			t.Errorf("the Ingress's path %v does not lead to the Service's %v port", p, port)
		}
	}
	if !slices.Equal(paths, []string{"/webhooks", "/api", "/ui"}) {
		t.Errorf("the Ingress routes %v, want /webhooks, /api and /ui only", paths)
	}

	out, err := runHelm(t, "template", "tfe-orchestrator", chartDir, "--set", "ingress.enabled=true")
	if err == nil || !strings.Contains(string(out), "ingress.host is required") {
		t.Errorf("ingress.enabled without a host: %v, want a refusal; got\n%s", err, lastLines(out, 5))
	}
}

// The orchestrator's image is the values' repository and tag (nobody
// publishes one: operators build and push it), appVersion by default.
func TestHelmImage(t *testing.T) {
	requireHelm(t)
	image := func(r rendered) any {
		return get(container(get(r.objects["Deployment/tfe-orchestrator"], "spec", "template", "spec"), "orchestrator"), "image")
	}
	if got := image(renderChart(t, "tfe-orchestrator")); got != "tfe-orchestrator:dev" {
		t.Errorf("the default image is %v, want tfe-orchestrator:dev (the chart's appVersion)", got)
	}
	r := renderChart(t, "tfe-orchestrator", "--set", "image.repository=registry.example.com/platform/tfe-orchestrator", "--set", "image.tag=1.4.2")
	if got := image(r); got != "registry.example.com/platform/tfe-orchestrator:1.4.2" {
		t.Errorf("the image is %v, want the values' registry.example.com/platform/tfe-orchestrator:1.4.2", got)
	}
}

// NOTES.txt says how to reach the page (a port-forward, then /ui/), and
// how to point the CLI at the daemon: through the Ingress when there is
// one; and that the page is off without API tokens.
func TestHelmNotes(t *testing.T) {
	requireHelm(t)
	for _, tc := range []struct {
		name     string
		args     []string
		want     []string
		wantNone []string
	}{
		{"API on", []string{"--set", "api.operateTokens=true"}, []string{
			"kubectl -n tfe-orchestrator port-forward svc/tfe-orchestrator 8080:8080",
			"open http://localhost:8080/ui/",
			"export ORCHESTRATOR_SERVER=http://localhost:8080\n",
			"export ORCHESTRATOR_API_TOKEN_FILE=",
			"-o jsonpath='{.data.api-operate-token}'",
			"http://tfe-orchestrator.tfe-orchestrator:8080/webhooks/tfe",
		}, []string{"are off"}},
		{"Ingress", []string{"-f", filepath.Join("testdata", "helm", "ingress.yaml")}, []string{
			"port-forward svc/tfe-orchestrator 8080:8080",
			"Through the Ingress: https://orchestrator.example.com/ui/",
			"export ORCHESTRATOR_SERVER=https://orchestrator.example.com\n",
			"--url https://orchestrator.example.com/webhooks/tfe",
		}, nil},
		{"API off", nil, []string{"The operator API and web page are off: set api.readTokens or api.operateTokens"}, []string{"port-forward"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notes := renderNotes(t, tc.args...)
			for _, want := range tc.want {
				if !strings.Contains(notes, want) {
					t.Errorf("NOTES do not say %q:\n%s", want, notes)
				}
			}
			for _, unwanted := range tc.wantNone {
				if strings.Contains(notes, unwanted) {
					t.Errorf("NOTES say %q:\n%s", unwanted, notes)
				}
			}
		})
	}
}

// renderNotes renders the chart's NOTES.txt as helm install would: helm
// template leaves NOTES out, so a copy of the chart renders the same text
// through tpl into a ConfigMap.
func renderNotes(t *testing.T, args ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "chart")
	if err := os.CopyFS(dir, os.DirFS(chartDir)); err != nil {
		t.Fatal(err)
	}
	notes, err := os.ReadFile(filepath.Join(chartDir, "templates", "NOTES.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes-under-test.txt"), notes, 0o600); err != nil {
		t.Fatal(err)
	}
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ tpl (.Files.Get \"notes-under-test.txt\") . | quote }}\n"
	if err := os.WriteFile(filepath.Join(dir, "templates", "zz-notes.yaml"), []byte(cm), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runHelm(t, append([]string{"template", "tfe-orchestrator", dir, "--namespace", "tfe-orchestrator", "--show-only", "templates/zz-notes.yaml"}, args...)...)
	if err != nil {
		t.Fatalf("render NOTES.txt %v: %v\n%s", args, err, out)
	}
	docs := parseDocs(t, "NOTES.txt", out)
	if len(docs) != 1 {
		t.Fatalf("render NOTES.txt: %d documents", len(docs))
	}
	s, _ := get(docs[0], "data", "notes").(string)
	if s == "" {
		t.Fatal("NOTES.txt renders empty")
	}
	return s
}
