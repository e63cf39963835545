package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
)

// The checks every set of Kubernetes objects gets, whether it is the plain
// manifests of kubernetes/ or what the Helm chart renders.

// serveConfig is what `orchestrator serve` reads: its flags and their
// environment variables, found in cmd/orchestrator's source (package main
// cannot be imported).
type serveConfig struct {
	flags   map[string]bool // without the leading --
	env     map[string]bool
	secrets map[string]bool // variables holding a secret (fs.secret, fs.secrets), their *_FILE forms included
}

// secretFileEnv are serve's variables that name a file whose content is a
// secret, though the flag itself is a plain path.
var secretFileEnv = map[string]bool{"NATS_NKEY": true, "NATS_CREDS": true, "NATS_TLS_KEY": true}

// readServeConfig parses serveFlags and the log flags every command has.
func readServeConfig(t *testing.T) serveConfig {
	t.Helper()
	cfg := serveConfig{flags: map[string]bool{}, env: map[string]bool{}, secrets: map[string]bool{}}
	addSecret := func(flag, env string) {
		cfg.flags[flag], cfg.flags[flag+"-file"] = true, true
		for _, e := range []string{env, env + "_FILE"} {
			cfg.env[e], cfg.secrets[e] = true, true
		}
	}
	files, err := filepath.Glob("../cmd/orchestrator/*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var found []string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			isLogFlags := fn.Name.Name == "define" && fn.Recv != nil && strings.Contains(types(fn.Recv), "logFlags")
			if fn.Name.Name != "serveFlags" && !isLogFlags {
				continue
			}
			found = append(found, fn.Name.Name)
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				arg := func(i int) string {
					if i >= len(call.Args) {
						return ""
					}
					lit, ok := call.Args[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						return ""
					}
					s, _ := strconv.Unquote(lit.Value)
					return s
				}
				switch m := sel.Sel.Name; {
				case m == "secret" || m == "secrets":
					addSecret(arg(0), arg(1))
				case m == "mirror":
					cfg.flags[arg(0)], cfg.env[arg(1)] = true, true
				case m == "stringVar" || m == "intVar" || m == "boolVar" || m == "durationVar":
					cfg.flags[arg(1)] = true
					if env := arg(2); env != "" {
						cfg.env[env] = true
					}
				case strings.HasSuffix(m, "Var") && m[0] >= 'A' && m[0] <= 'Z': // flag.FlagSet's own
					cfg.flags[arg(1)] = true
				}
				return true
			})
		}
	}
	delete(cfg.flags, "")
	delete(cfg.env, "")
	slices.Sort(found)
	if !slices.Equal(found, []string{"define", "serveFlags"}) {
		t.Fatalf("found %v in cmd/orchestrator, want serveFlags and logFlags.define: where are serve's flags now?", found)
	}
	for _, want := range []string{"TFE_TOKEN", "TFE_TOKEN_FILE", "NATS_URL", "NATS_NKEY", "ORCHESTRATOR_LOG_FORMAT", "ORCHESTRATOR_WEBHOOK_MAX_BODY"} {
		if !cfg.env[want] {
			t.Fatalf("serve's variables as read from its source lack %s: the reading is broken", want)
		}
	}
	return cfg
}

func types(fields *ast.FieldList) string {
	var b strings.Builder
	for _, f := range fields.List {
		ast.Inspect(f.Type, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				b.WriteString(id.Name)
			}
			return true
		})
	}
	return b.String()
}

// container returns the pod's container of that name.
func container(pod any, name string) any {
	for _, c := range asList(get(pod, "containers")) {
		if get(c, "name") == name {
			return c
		}
	}
	return nil
}

// secretRef is one key of one Secret.
type secretRef struct{ secret, key string }

// mountedSecret returns the Secret key that path is in container c of pod,
// through a secret or a projected volume.
func mountedSecret(pod, c any, path string) (secretRef, bool) {
	for _, m := range asList(get(c, "volumeMounts")) {
		dir, _ := get(m, "mountPath").(string)
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(dir, "/")+"/")
		if !ok || get(m, "subPath") != nil {
			continue
		}
		for _, v := range asList(get(pod, "volumes")) {
			if get(v, "name") != get(m, "name") {
				continue
			}
			var sources []any
			if s := get(v, "secret"); s != nil {
				sources = append(sources, map[string]any{"name": get(s, "secretName"), "items": get(s, "items")})
			}
			for _, src := range asList(get(v, "projected", "sources")) {
				if s := get(src, "secret"); s != nil {
					sources = append(sources, s)
				}
			}
			for _, s := range sources {
				name, _ := get(s, "name").(string)
				items := asList(get(s, "items"))
				if len(items) == 0 {
					return secretRef{name, rel}, true
				}
				for _, item := range items {
					if get(item, "path") == rel {
						return secretRef{name, get(item, "key").(string)}, true
					}
				}
			}
		}
	}
	return secretRef{}, false
}

// checkOrchestrator checks the orchestrator's container: serve with flags
// and variables serve has, its probes and resources, and every secret from
// a Secret, as a reference or a mounted file, never a value. It returns the
// Secret key behind each secret variable.
func checkOrchestrator(t *testing.T, where string, pod any, serve serveConfig) map[string]secretRef {
	t.Helper()
	c := container(pod, "orchestrator")
	if c == nil {
		t.Errorf("%s: no orchestrator container", where)
		return nil
	}
	args := asList(get(c, "args"))
	if len(args) == 0 || args[0] != "serve" {
		t.Errorf("%s: args are %v, want serve first", where, args)
	}
	for _, a := range args[min(1, len(args)):] {
		s, _ := a.(string)
		name, _, _ := strings.Cut(strings.TrimLeft(s, "-"), "=")
		if !strings.HasPrefix(s, "-") || !serve.flags[name] {
			t.Errorf("%s: argument %q is not a flag of serve", where, s)
		}
	}
	if get(c, "readinessProbe", "httpGet", "path") != "/readyz" || get(c, "livenessProbe", "httpGet", "path") != "/healthz" {
		t.Errorf("%s: the orchestrator's probes are not /readyz and /healthz", where)
	}
	if get(c, "resources", "requests") == nil || get(c, "resources", "limits") == nil {
		t.Errorf("%s: the orchestrator has no resource requests and limits", where)
	}
	refs := map[string]secretRef{}
	for _, e := range asList(get(c, "env")) {
		name, _ := get(e, "name").(string)
		value, _ := get(e, "value").(string)
		if !serve.env[name] {
			t.Errorf("%s: $%s is not a variable serve reads", where, name)
		}
		if !serve.secrets[name] && !secretFileEnv[name] {
			if ref, ok := mountedSecret(pod, c, value); ok && value != "" {
				refs[name] = ref // a file from a Secret, such as a CA
			}
			continue
		}
		if strings.HasSuffix(name, "_FILE") || secretFileEnv[name] {
			ref, ok := mountedSecret(pod, c, value)
			if !ok {
				t.Errorf("%s: $%s is %q, which is not a file of a mounted Secret", where, name, value)
				continue
			}
			refs[name] = ref
			continue
		}
		ref := get(e, "valueFrom", "secretKeyRef")
		if value != "" || ref == nil {
			t.Errorf("%s: $%s is a secret not taken from a Secret", where, name)
			continue
		}
		refs[name] = secretRef{get(ref, "name").(string), get(ref, "key").(string)}
	}
	return refs
}

// checkRestricted checks that every workload passes the Kubernetes
// "restricted" Pod Security Standard
// (https://kubernetes.io/docs/concepts/security/pod-security-standards/),
// so that a namespace enforcing it admits them.
func checkRestricted(t *testing.T, objects map[string]map[string]any) {
	t.Helper()
	allowedVolumes := map[string]bool{"configMap": true, "csi": true, "downwardAPI": true, "emptyDir": true, "ephemeral": true,
		"persistentVolumeClaim": true, "projected": true, "secret": true}
	for name, pod := range podSpecs(objects) {
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
			containers = append(containers, asList(get(pod, list))...)
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
			if get(sc, "readOnlyRootFilesystem") != true {
				t.Errorf("%s: the root filesystem is writable", where)
			}
			for _, p := range asList(get(c, "ports")) {
				if get(p, "hostPort") != nil {
					t.Errorf("%s: uses a host port", where)
				}
			}
		}
	}
}

// policyWant says what the NetworkPolicies must admit, as label lists
// ("key=value", "namespace:key=value", "ipBlock"), sorted.
type policyWant struct {
	nats, orchestrator string   // the policies' names; nats "" when NATS is not ours
	natsSelector       []string // the NATS pods
	orchSelector       []string // the orchestrator's pods
	natsClients        []string // admitted to NATS's client port
	natsCluster        []string // admitted to NATS's cluster port
}

func checkNetworkPolicies(t *testing.T, objects map[string]map[string]any, want policyWant) {
	t.Helper()
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
	policies := []map[string]any{}
	if want.nats != "" {
		nats := objects["NetworkPolicy/"+want.nats]
		if nats == nil || !slices.Equal(matchLabels(get(nats, "spec", "podSelector")), want.natsSelector) {
			t.Fatalf("no NetworkPolicy %s selects the NATS pods", want.nats)
		}
		if got := peerLabels(admits(nats, 4222)); !slices.Equal(got, want.natsClients) {
			t.Errorf("NATS client port admits %v, want %v", got, want.natsClients)
		}
		if got := peerLabels(admits(nats, 6222)); !slices.Equal(got, want.natsCluster) {
			t.Errorf("NATS cluster port admits %v, want %v", got, want.natsCluster)
		}
		policies = append(policies, nats)
	}
	orch := objects["NetworkPolicy/"+want.orchestrator]
	if orch == nil || !slices.Equal(matchLabels(get(orch, "spec", "podSelector")), want.orchSelector) {
		t.Fatalf("no NetworkPolicy %s selects the orchestrator's pods", want.orchestrator)
	}
	if from := admits(orch, 8080); len(from) == 0 {
		t.Error("the orchestrator's policy lists no source for port 8080")
	}
	for _, p := range append(policies, orch) {
		if !slices.Contains(asList(get(p, "spec", "policyTypes")), any("Ingress")) {
			t.Errorf("%s does not restrict ingress", get(p, "metadata", "name"))
		}
	}
}

// matchLabels returns a selector's labels as sorted key=value strings.
func matchLabels(selector any) []string {
	var out []string
	for k, v := range asMap(get(selector, "matchLabels")) {
		out = append(out, k+"="+v.(string))
	}
	slices.Sort(out)
	return out
}

// peerLabels returns the labels NetworkPolicy peers select by.
func peerLabels(from []any) []string {
	var out []string
	for _, f := range from {
		out = append(out, matchLabels(get(f, "podSelector"))...)
		for _, l := range matchLabels(get(f, "namespaceSelector")) {
			out = append(out, "namespace:"+l)
		}
		if get(f, "ipBlock") != nil {
			out = append(out, "ipBlock")
		}
	}
	slices.Sort(out)
	return out
}

// natsWant names the objects of a NATS cluster and its clients' Secret.
type natsWant struct {
	configMap, statefulSet, service, deployment, secret string
	replicas                                            int
}

// checkNATSAuthentication checks that NATS admits one NKey user whose
// public key comes from the Secret, that the orchestrator signs in with the
// seed from the same Secret through the client Service, and that the nodes
// route to each other.
func checkNATSAuthentication(t *testing.T, objects map[string]map[string]any, want natsWant, serve serveConfig) {
	t.Helper()
	cm := objects["ConfigMap/"+want.configMap]
	sts := objects["StatefulSet/"+want.statefulSet]
	dep := objects["Deployment/"+want.deployment]
	svc := objects["Service/"+want.service]
	if cm == nil || sts == nil || dep == nil || svc == nil {
		t.Fatalf("missing one of ConfigMap/%s, StatefulSet/%s, Service/%s, Deployment/%s", want.configMap, want.statefulSet, want.service, want.deployment)
	}
	pod := get(sts, "spec", "template", "spec")
	if get(sts, "spec", "replicas") != want.replicas {
		t.Errorf("NATS runs %v nodes, want %d", get(sts, "spec", "replicas"), want.replicas)
	}
	if !slices.Equal(selectorLabels(get(svc, "spec", "selector")), matchLabels(get(sts, "spec", "selector"))) {
		t.Errorf("Service/%s does not select the NATS pods", want.service)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	opts := natsConfig(t, get(cm, "data", "nats.conf").(string), map[string]string{"POD_NAME": want.statefulSet + "-0", "NATS_NKEY_PUBLIC": pub})
	if len(opts.Nkeys) != 1 || opts.Nkeys[0].Nkey != pub || len(opts.Users) != 0 || opts.NoAuthUser != "" {
		t.Errorf("NATS admits %d NKey users and %d others, want the one NKey user of the Secret", len(opts.Nkeys), len(opts.Users))
	}
	if want.replicas > 1 {
		var routes []string
		for _, r := range opts.Routes {
			routes = append(routes, r.Host)
		}
		var wantRoutes []string
		for i := range want.replicas {
			wantRoutes = append(wantRoutes, want.statefulSet+"-"+strconv.Itoa(i)+"."+get(sts, "spec", "serviceName").(string)+":6222")
		}
		if !slices.Equal(routes, wantRoutes) {
			t.Errorf("NATS routes to %v, want %v", routes, wantRoutes)
		}
	}
	if !strings.HasPrefix(opts.StoreDir, "/data/") || !slices.ContainsFunc(asList(get(container(pod, "nats"), "volumeMounts")), func(m any) bool {
		return get(m, "mountPath") == "/data" && get(m, "name") == get(sts, "spec", "volumeClaimTemplates", 0, "metadata", "name")
	}) {
		t.Errorf("the JetStream store %s is not on the NATS pods' volume at /data", opts.StoreDir)
	}
	var public any
	for _, e := range asList(get(container(pod, "nats"), "env")) {
		if get(e, "name") == "NATS_NKEY_PUBLIC" {
			public = get(e, "valueFrom", "secretKeyRef")
		}
	}
	if get(public, "name") != want.secret || get(public, "key") != "nats-nkey-public" {
		t.Errorf("NATS does not take the public key from the Secret %s's nats-nkey-public", want.secret)
	}
	orch := get(dep, "spec", "template", "spec")
	refs := checkOrchestrator(t, "Deployment/"+want.deployment, orch, serve)
	if got := refs["NATS_NKEY"]; got != (secretRef{want.secret, "nats-nkey-seed"}) {
		t.Errorf("NATS_NKEY is %v, not the Secret %s's nats-nkey-seed mounted in the orchestrator", got, want.secret)
	}
	if got, want := envValue(container(orch, "orchestrator"), "NATS_URL"), "nats://"+want.service+":4222"; got != want {
		t.Errorf("the orchestrator's NATS_URL is %q, want %q", got, want)
	}
}

// selectorLabels returns a Service's selector as sorted key=value strings.
func selectorLabels(selector any) []string {
	return matchLabels(map[string]any{"matchLabels": selector})
}

// envValue returns the plain value of a container's variable.
func envValue(c any, name string) string {
	for _, e := range asList(get(c, "env")) {
		if get(e, "name") == name {
			v, _ := get(e, "value").(string)
			return v
		}
	}
	return ""
}
