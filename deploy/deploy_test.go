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
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
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

// Every workload passes the Kubernetes "restricted" Pod Security Standard
// (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
// so that a namespace enforcing it admits them.
func TestPodSecurityRestricted(t *testing.T) {
	specs := podSpecs(kubernetesObjects(t))
	if len(specs) < 2 {
		t.Fatalf("found %d workloads, want the orchestrator and NATS", len(specs))
	}
	allowedVolumes := map[string]bool{"configMap": true, "csi": true, "downwardAPI": true, "emptyDir": true, "ephemeral": true,
		"persistentVolumeClaim": true, "projected": true, "secret": true}
	for name, pod := range specs {
		for _, f := range []string{"hostNetwork", "hostPID", "hostIPC"} {
			if get(pod, f) == true {
				t.Errorf("%s: %s", name, f)
			}
		}
		podSC := get(pod, "securityContext")
		if get(podSC, "sysctls") != nil {
			t.Errorf("%s: sets sysctls", name)
		}
		for _, v := range asList(get(pod, "volumes")) {
			for k := range v.(map[string]any) {
				if k != "name" && !allowedVolumes[k] {
					t.Errorf("%s: volume %s is of type %s", name, get(v, "name"), k)
				}
			}
		}
		var containers []any
		for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
			if l, ok := get(pod, list).([]any); ok {
				containers = append(containers, l...)
			}
		}
		for _, c := range containers {
			where := name + " container " + get(c, "name").(string)
			sc := get(c, "securityContext")
			if get(sc, "privileged") == true {
				t.Errorf("%s: privileged", where)
			}
			if get(sc, "allowPrivilegeEscalation") != false {
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			}
			drop, _ := get(sc, "capabilities", "drop").([]any)
			if !slices.Contains(drop, any("ALL")) {
				t.Errorf("%s: capabilities do not drop ALL", where)
			}
			for _, c := range asList(get(sc, "capabilities", "add")) {
				if c != "NET_BIND_SERVICE" {
					t.Errorf("%s: adds capability %v", where, c)
				}
			}
			if get(sc, "runAsNonRoot") != true && (get(podSC, "runAsNonRoot") != true || get(sc, "runAsNonRoot") == false) {
				t.Errorf("%s: runAsNonRoot is not true", where)
			}
			for _, ctx := range []any{podSC, sc} {
				if get(ctx, "runAsUser") == 0 {
					t.Errorf("%s: runs as uid 0", where)
				}
			}
			seccomp := get(sc, "seccompProfile", "type")
			if seccomp == nil {
				seccomp = get(podSC, "seccompProfile", "type")
			}
			if seccomp != "RuntimeDefault" && seccomp != "Localhost" {
				t.Errorf("%s: seccompProfile is %v, want RuntimeDefault or Localhost", where, seccomp)
			}
			for _, p := range asList(get(c, "ports")) {
				if get(p, "hostPort") != nil {
					t.Errorf("%s: uses a host port", where)
				}
			}
		}
	}
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
	nats := objects["NetworkPolicy/nats"]
	if nats == nil || get(nats, "spec", "podSelector", "matchLabels", "app.kubernetes.io/name") != "nats" {
		t.Fatal("no NetworkPolicy selects the NATS pods")
	}
	admits := func(policy map[string]any, port int) []any {
		var from []any
		for _, rule := range asList(get(policy, "spec", "ingress")) {
			for _, p := range asList(get(rule, "ports")) {
				if get(p, "port") == port {
					f := asList(get(rule, "from"))
					if len(f) == 0 {
						t.Errorf("%s admits anyone to port %d", get(policy, "metadata", "name"), port)
					}
					from = append(from, f...)
				}
			}
		}
		return from
	}
	labels := func(from []any) []string {
		var out []string
		for _, f := range from {
			for k, v := range asMap(get(f, "podSelector", "matchLabels")) {
				out = append(out, k+"="+v.(string))
			}
			for k, v := range asMap(get(f, "namespaceSelector", "matchLabels")) {
				out = append(out, "namespace:"+k+"="+v.(string))
			}
			if get(f, "ipBlock") != nil {
				out = append(out, "ipBlock")
			}
		}
		slices.Sort(out)
		return out
	}
	if got, want := labels(admits(nats, 4222)), []string{"app.kubernetes.io/name=tfe-orchestrator", "tfe-orchestrator.io/nats-client=true"}; !slices.Equal(got, want) {
		t.Errorf("NATS client port admits %v, want %v", got, want)
	}
	if got, want := labels(admits(nats, 6222)), []string{"app.kubernetes.io/name=nats"}; !slices.Equal(got, want) {
		t.Errorf("NATS cluster port admits %v, want %v", got, want)
	}
	orch := objects["NetworkPolicy/tfe-orchestrator"]
	if orch == nil || get(orch, "spec", "podSelector", "matchLabels", "app.kubernetes.io/name") != "tfe-orchestrator" {
		t.Fatal("no NetworkPolicy selects the orchestrator's pods")
	}
	if from := admits(orch, 8080); len(from) == 0 {
		t.Error("the orchestrator's policy lists no source for port 8080")
	}
	for _, p := range []map[string]any{nats, orch} {
		if !slices.Contains(asList(get(p, "spec", "policyTypes")), any("Ingress")) {
			t.Errorf("%s does not restrict ingress", get(p, "metadata", "name"))
		}
	}
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
	objects := kubernetesObjects(t)
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	opts := natsConfig(t, get(objects["ConfigMap/nats-config"], "data", "nats.conf").(string), map[string]string{"POD_NAME": "nats-0", "NATS_NKEY_PUBLIC": pub})
	if len(opts.Nkeys) != 1 || opts.Nkeys[0].Nkey != pub || len(opts.Users) != 0 || opts.NoAuthUser != "" {
		t.Errorf("NATS admits %d NKey users and %d others, want the one NKey user of the Secret", len(opts.Nkeys), len(opts.Users))
	}
	envOf := func(c any) map[string]any {
		out := map[string]any{}
		for _, e := range asList(get(c, "env")) {
			out[get(e, "name").(string)] = e
		}
		return out
	}
	natsEnv := envOf(get(objects["StatefulSet/nats"], "spec", "template", "spec", "containers", 0))
	if get(natsEnv["NATS_NKEY_PUBLIC"], "valueFrom", "secretKeyRef", "key") != "nats-nkey-public" {
		t.Error("NATS does not take the public key from the Secret")
	}
	pod := get(objects["Deployment/tfe-orchestrator"], "spec", "template", "spec")
	c := get(pod, "containers", 0)
	seedPath, _ := get(envOf(c)["NATS_NKEY"], "value").(string)
	var mounted bool
	for _, m := range asList(get(c, "volumeMounts")) {
		for _, v := range asList(get(pod, "volumes")) {
			if get(v, "name") != get(m, "name") || get(v, "secret", "secretName") != "tfe-orchestrator" {
				continue
			}
			for _, item := range asList(get(v, "secret", "items")) {
				if get(item, "key") == "nats-nkey-seed" && get(m, "mountPath").(string)+"/"+get(item, "path").(string) == seedPath {
					mounted = true
				}
			}
		}
	}
	if !mounted {
		t.Errorf("NATS_NKEY (%q) is not the Secret's nats-nkey-seed mounted in the orchestrator", seedPath)
	}
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
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github\.com/nats-io/nats-server/v2 v(\d+\.\d+\.\d+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod does not require nats-server")
	}
	want := "nats:" + string(m[1])
	images := map[string]any{
		"compose x-nats":         get(docs(t, "compose.yaml")[0], "x-nats", "image"),
		"Kubernetes StatefulSet": get(kubernetesObjects(t)["StatefulSet/nats"], "spec", "template", "spec", "containers", 0, "image"),
	}
	for where, image := range images {
		if image != want {
			t.Errorf("%s runs %v, want %s (go.mod)", where, image, want)
		}
	}
}
