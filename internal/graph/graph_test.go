package graph_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	lib "github.com/dominikbraun/graph"

	"github.com/tfe-orchestrator/orchestrator/internal/graph"
)

// build makes a graph from "a>b b>c" (edges by name); every name becomes a
// workspace with ID "ws-<name>". Names in extra are workspaces with no edge;
// "?x" as an end is an unknown workspace.
func build(t testing.TB, spec string, extra ...string) *graph.Graph {
	t.Helper()
	names := map[string]bool{}
	var edges []graph.Edge
	for _, e := range strings.Fields(spec) {
		s, d, ok := strings.Cut(e, ">")
		if !ok {
			t.Fatalf("bad edge %q", e)
		}
		for _, n := range []string{s, d} {
			if !strings.HasPrefix(n, "?") {
				names[n] = true
			}
		}
		edges = append(edges, graph.Edge{Source: "ws-" + strings.TrimPrefix(s, "?"), Target: "ws-" + strings.TrimPrefix(d, "?")})
	}
	for _, n := range extra {
		names[n] = true
	}
	var ws []graph.Workspace
	for n := range names {
		ws = append(ws, graph.Workspace{ID: "ws-" + n, Name: n})
	}
	g, err := graph.New(ws, edges)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// names turns IDs into names.
func names(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strings.TrimPrefix(id, "ws-")
	}
	return strings.Join(out, " ")
}

func layers(p *graph.Plan) string {
	var out []string
	for _, l := range p.Layers {
		out = append(out, names(l))
	}
	return strings.Join(out, " | ")
}

func cycles(g *graph.Graph, cs []graph.Cycle) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Names(g))
	}
	return strings.Join(out, "; ")
}

func blocked(p *graph.Plan) string {
	var out []string
	for _, b := range p.Blocked {
		mark := ""
		if b.OnCycle {
			mark = "*"
		}
		out = append(out, strings.TrimPrefix(b.ID, "ws-")+mark)
	}
	return strings.Join(out, " ")
}

func fanOut(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "root>t%02d ", i)
	}
	return b.String()
}

func TestPlans(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     string
		root     string
		layers   string
		barriers map[string]string // name → barrier names
		fanIn    string
		blocked  string // names; * marks members of the cycle
		cycles   string
	}{
		{
			name: "chain", spec: "a>b b>c c>d", root: "a",
			layers: "a | b | c | d", barriers: map[string]string{"b": "a", "c": "b", "d": "c"},
		},
		{
			name: "chain from the middle", spec: "a>b b>c c>d", root: "b",
			layers: "b | c | d", barriers: map[string]string{"c": "b", "d": "c"},
		},
		{
			name: "diamond", spec: "a>b a>c b>d c>d", root: "a",
			layers: "a | b c | d", barriers: map[string]string{"b": "a", "c": "a", "d": "b c"}, fanIn: "d",
		},
		{
			name: "uneven diamond: d waits for the longer branch", spec: "a>b b>c c>d a>d", root: "a",
			layers: "a | b | c | d", barriers: map[string]string{"d": "a c"}, fanIn: "d",
		},
		{
			name: "wide fan-out", spec: fanOut(30), root: "root",
			layers: "root | " + strings.TrimSpace(strings.NewReplacer("root>", "", " ", " ").Replace(fanOut(30))),
		},
		{
			name: "fan-in of three, only two in the closure", spec: "a>x b>x c>x a>b", root: "a",
			layers: "a | b | x", barriers: map[string]string{"b": "a", "x": "a b"}, fanIn: "x",
		},
		{
			name: "a cycle downstream of the root blocks what depends on it", spec: "r>a a>b b>a b>c c>d r>e e>d r>f", root: "r",
			layers: "r | e f", fanIn: "a d", blocked: "a* b* c d", cycles: "a → b → a",
		},
		{
			name: "the root on a cycle", spec: "a>b b>a a>c", root: "a",
			layers: "a | c", blocked: "b*", cycles: "a → b → a",
		},
		{
			name: "a self edge", spec: "a>b b>b b>c a>d", root: "a",
			layers: "a | d", blocked: "b* c", cycles: "b → b",
		},
		{
			name: "two cycles, blamed on the first", spec: "r>a a>b b>a r>x x>y y>x b>z y>z", root: "r",
			layers: "r", fanIn: "a x z", blocked: "a* b* x* y* z", cycles: "a → b → a; x → y → x",
		},
		{
			name: "a cycle the root cannot reach does not matter", spec: "r>a x>y y>x", root: "r",
			layers: "r | a", barriers: map[string]string{"a": "r"},
		},
		{
			name: "edges to unknown workspaces are left out", spec: "r>a a>?ghost ?ghost>r", root: "r",
			layers: "r | a",
		},
		{
			name: "a workspace alone", spec: "", root: "solo",
			layers: "solo",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := build(t, tc.spec, tc.root)
			p, err := g.Plan("ws-" + tc.root)
			if err != nil {
				t.Fatal(err)
			}
			if got := layers(p); got != tc.layers {
				t.Errorf("layers: got %q, want %q", got, tc.layers)
			}
			for n, want := range tc.barriers {
				if got := names(p.Barriers["ws-"+n]); got != want {
					t.Errorf("barrier of %s: got %q, want %q", n, got, want)
				}
			}
			if got := names(p.FanIn); got != tc.fanIn {
				t.Errorf("fan-in: got %q, want %q", got, tc.fanIn)
			}
			if got := blocked(p); got != tc.blocked {
				t.Errorf("blocked: got %q, want %q", got, tc.blocked)
			}
			if got := cycles(g, p.Cycles); got != tc.cycles {
				t.Errorf("cycles: got %q, want %q", got, tc.cycles)
			}
		})
	}
}

func TestCycles(t *testing.T) {
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"none", "a>b b>c a>c", ""},
		{"two", "a>b b>a", "a → b → a"},
		{"three, named from the first by name", "db>cache cache>app app>db", "app → db → cache → app"},
		{"shortest path through the first member", "a>b b>c c>d d>a b>a", "a → b → a"},
		{"several disjoint", "x>y y>x m>n n>o o>m a>a", "a → a; m → n → o → m; x → y → x"},
		{"self edges, one inside a larger cycle", "a>a b>c c>b c>c", "a → a; b → c → b"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := build(t, tc.spec)
			if got := cycles(g, g.Cycles()); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEmptyGraph(t *testing.T) {
	g, err := graph.New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Cycles()) != 0 || len(g.Lint()) != 0 || len(g.Workspaces()) != 0 {
		t.Error("an empty graph has cycles, findings or workspaces")
	}
	if _, err := g.Plan("ws-x"); !errors.Is(err, graph.ErrUnknownWorkspace) {
		t.Errorf("plan from an unknown root: got %v, want ErrUnknownWorkspace", err)
	}
	var b bytes.Buffer
	if err := g.WriteJSON(&b); err != nil || !strings.Contains(b.String(), `"edges": []`) {
		t.Errorf("JSON of an empty graph: %s %v", b.String(), err)
	}
}

func TestBadInput(t *testing.T) {
	if _, err := graph.New([]graph.Workspace{{ID: "ws-a", Name: "a"}, {ID: "ws-a", Name: "b"}}, nil); err == nil {
		t.Error("duplicate IDs accepted")
	}
	if _, err := graph.New([]graph.Workspace{{Name: "a"}}, nil); err == nil {
		t.Error("a workspace without ID accepted")
	}
}

func TestLint(t *testing.T) {
	ws := []graph.Workspace{{ID: "ws-t", Name: "t"}, {ID: "ws-l", Name: "laptop", ExecutionMode: "local"}}
	var edges []graph.Edge
	for i := range 20 {
		id := fmt.Sprintf("ws-s%02d", i)
		ws = append(ws, graph.Workspace{ID: id, Name: fmt.Sprintf("s%02d", i)})
		edges = append(edges, graph.Edge{Source: id, Target: "ws-t"})
	}
	edges = append(edges,
		graph.Edge{Source: "ws-t", Target: "ws-l"},
		graph.Edge{Source: "ws-t", Target: "ws-gone"},
		graph.Edge{Source: "ws-l", Target: "ws-s00"},
	)
	g, err := graph.New(ws, edges)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range g.Lint() {
		got = append(got, f.Kind+": "+f.Message)
	}
	want := []string{
		"cycle: laptop → s00 → t → laptop",
		"source_limit: t has 20 source workspaces, TFE's limit is 20",
		"local_target: t → laptop: laptop uses local execution and cannot run remotely",
		"dangling_edge: t → ws-gone: the target is not a known workspace",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The same graph given in any order renders to the same bytes.
func TestDeterministic(t *testing.T) {
	ws, edges := randomGraph(rand.New(rand.NewPCG(7, 7)), 300, 3)
	render := func(ws []graph.Workspace, edges []graph.Edge) string {
		g, err := graph.New(ws, edges)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for _, write := range []func(*bytes.Buffer) error{
			func(b *bytes.Buffer) error { return g.WriteJSON(b) },
			func(b *bytes.Buffer) error { return g.WriteText(b) },
			func(b *bytes.Buffer) error { return g.WriteDOT(b) },
			func(b *bytes.Buffer) error { return g.WriteMermaid(b) },
		} {
			if err := write(&b); err != nil {
				t.Fatal(err)
			}
		}
		p, err := g.Plan("ws-0000000000000000")
		if err != nil {
			t.Fatal(err)
		}
		if err := g.WritePlan(&b, p); err != nil {
			t.Fatal(err)
		}
		fmt.Fprint(&b, g.Lint())
		return b.String()
	}
	want := render(ws, edges)
	r := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		ws2, edges2 := slices.Clone(ws), slices.Clone(edges)
		r.Shuffle(len(ws2), func(i, j int) { ws2[i], ws2[j] = ws2[j], ws2[i] })
		r.Shuffle(len(edges2), func(i, j int) { edges2[i], edges2[j] = edges2[j], edges2[i] })
		edges2 = append(edges2, edges2[:10]...) // duplicates count once
		if got := render(ws2, edges2); got != want {
			gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
			for i := range min(len(gl), len(wl)) {
				if gl[i] != wl[i] {
					t.Fatalf("the same graph in another order rendered differently at line %d:\n got %s\nwant %s", i, gl[i], wl[i])
				}
			}
			t.Fatal("the same graph in another order rendered differently")
		}
	}
}

func randomGraph(r *rand.Rand, n, perNode int) ([]graph.Workspace, []graph.Edge) {
	ws := make([]graph.Workspace, n)
	for i := range ws {
		ws[i] = graph.Workspace{ID: fmt.Sprintf("ws-%016d", i), Name: fmt.Sprintf("w%06d", r.IntN(1_000_000))}
	}
	edges := make([]graph.Edge, 0, n*perNode)
	for range n * perNode {
		edges = append(edges, graph.Edge{Source: ws[r.IntN(n)].ID, Target: ws[r.IntN(n)].ID})
	}
	return ws, edges
}

// Cross-check cycle detection against dominikbraun/graph's strongly
// connected components on random graphs, sparse and dense.
func TestCyclesAgainstLibrary(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, shape := range []struct{ n, per int }{{50, 1}, {200, 1}, {200, 2}, {1000, 3}} {
		ws, edges := randomGraph(r, shape.n, shape.per)
		g, err := graph.New(ws, edges)
		if err != nil {
			t.Fatal(err)
		}
		ref := lib.New(lib.StringHash, lib.Directed())
		for _, w := range ws {
			_ = ref.AddVertex(w.ID)
		}
		self := map[string]bool{}
		for _, e := range edges {
			_ = ref.AddEdge(e.Source, e.Target)
			if e.Source == e.Target {
				self[e.Source] = true
			}
		}
		comps, err := lib.StronglyConnectedComponents(ref)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, c := range comps {
			if len(c) > 1 || self[c[0]] {
				slices.Sort(c)
				want = append(want, strings.Join(c, ","))
			}
		}
		var got []string
		for _, c := range g.Cycles() {
			m := slices.Clone(c.Members)
			slices.Sort(m)
			got = append(got, strings.Join(m, ","))
			checkPath(t, g, c)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("n=%d: got %d cyclic components, the library %d", shape.n, len(got), len(want))
		}
	}
}

// checkPath checks that a cycle's path is closed and follows edges among
// its members.
func checkPath(t *testing.T, g *graph.Graph, c graph.Cycle) {
	t.Helper()
	if len(c.Path) < 2 || c.Path[0] != c.Path[len(c.Path)-1] || c.Path[0] != c.Members[0] {
		t.Fatalf("path %v is not closed at the first member %s", c.Path, c.Members[0])
	}
	for i := 0; i+1 < len(c.Path); i++ {
		if !slices.Contains(g.Targets(c.Path[i]), c.Path[i+1]) || !slices.Contains(c.Members, c.Path[i]) {
			t.Fatalf("path %v: %s → %s is not an edge inside the cycle", c.Path, c.Path[i], c.Path[i+1])
		}
	}
}

// On random graphs every plan keeps the cascade rules: each dispatched
// workspace comes after its whole barrier; nothing on or behind a cycle is
// dispatched; everything else in the closure is.
func TestPlanInvariants(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 40 {
		ws, edges := randomGraph(r, 200, 1+trial%3)
		g, err := graph.New(ws, edges)
		if err != nil {
			t.Fatal(err)
		}
		root := ws[r.IntN(len(ws))].ID
		p, err := g.Plan(root)
		if err != nil {
			t.Fatal(err)
		}
		closure, _ := g.Closure(root)
		layerOf := map[string]int{}
		for i, l := range p.Layers {
			for _, id := range l {
				if _, dup := layerOf[id]; dup {
					t.Fatalf("%s is in two layers", id)
				}
				layerOf[id] = i
			}
		}
		blockedSet := map[string]bool{}
		for _, b := range p.Blocked {
			blockedSet[b.ID] = true
			if _, in := layerOf[b.ID]; in {
				t.Fatalf("blocked %s is dispatched", b.ID)
			}
		}
		for _, id := range closure {
			_, in := layerOf[id]
			if in == blockedSet[id] {
				t.Fatalf("%s is %v dispatched and %v blocked", id, in, blockedSet[id])
			}
			if id == root || !in {
				continue
			}
			for _, u := range p.Barriers[id] {
				if lu, ok := layerOf[u]; !ok || lu >= layerOf[id] {
					t.Fatalf("%s (layer %d) dispatched before its upstream %s (layer %d, present %v)", id, layerOf[id], u, lu, ok)
				}
			}
		}
		for _, c := range p.Cycles {
			checkPath(t, g, c)
		}
	}
}

// The JSON document is valid and reads back whatever the names hold: its
// lines are broken between elements, never inside a string.
func TestWriteJSONBreaksLinesBetweenElementsOnly(t *testing.T) {
	ws := []graph.Workspace{{ID: "ws-a", Name: `a,{"x":[1,2]}\`}, {ID: "ws-b", Name: "b],["}, {ID: "ws-c", Name: "c"}}
	g, err := graph.New(ws, []graph.Edge{{Source: "ws-a", Target: "ws-b"}, {Source: "ws-b", Target: "ws-a"}, {Source: "ws-b", Target: "ws-c"}})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := g.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var d graph.Document
	if err := json.Unmarshal(b.Bytes(), &d); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b.String())
	}
	if len(d.Workspaces) != 3 || d.Workspaces[0].Name != ws[0].Name || len(d.Edges) != 3 || len(d.Cycles) != 1 {
		t.Errorf("read back %+v from\n%s", d, b.String())
	}
	if lines := strings.Count(b.String(), "\n"); lines < 3+3+2+6 {
		t.Errorf("got %d lines, want one per element:\n%s", lines, b.String())
	}
}
