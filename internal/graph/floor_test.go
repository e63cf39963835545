package graph_test

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/tfe-orchestrator/orchestrator/internal/graph"
)

// BenchmarkGraphCommand is what `orchestrator graph --format json` does
// once the run triggers are read: build the graph, find its cycles and
// lints, and write the document. BenchmarkPlainSlicesFloor does the least
// that gives the same answer, on plain slices: index the workspaces, build
// adjacency lists, find the strongly connected components (Tarjan,
// iterative) and encode workspaces, edges and the components of more than
// one workspace. The command is held to within twice the floor
// (docs/benchmarks.md).
func BenchmarkGraphCommand(b *testing.B) {
	ws, edges := commandGraph()
	b.ReportAllocs()
	for b.Loop() {
		g, err := graph.New(ws, edges)
		if err != nil {
			b.Fatal(err)
		}
		if err := g.WriteJSON(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlainSlicesFloor(b *testing.B) {
	ws, edges := commandGraph()
	b.ReportAllocs()
	for b.Loop() {
		index := make(map[string]int32, len(ws))
		for i, w := range ws {
			index[w.ID] = int32(i)
		}
		adj := make([][]int32, len(ws))
		for _, e := range edges {
			s, t := index[e.Source], index[e.Target]
			adj[s] = append(adj[s], t)
		}
		comps := tarjan(adj)
		var cycles [][]string
		for _, c := range comps {
			if len(c) > 1 {
				names := make([]string, len(c))
				for k, v := range c {
					names[k] = ws[v].Name
				}
				cycles = append(cycles, names)
			}
		}
		doc := struct {
			Workspaces []graph.Workspace `json:"workspaces"`
			Edges      []graph.Edge      `json:"edges"`
			Cycles     [][]string        `json:"cycles"`
		}{ws, edges, cycles}
		if err := json.NewEncoder(io.Discard).Encode(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// commandGraph is 100,000 workspaces in acyclic components of 100, with
// 50 cycles, as real organizations have by accident.
func commandGraph() ([]graph.Workspace, []graph.Edge) {
	ws, edges := dag(100_000, 100)
	r := rand.New(rand.NewPCG(3, 3))
	for range 50 {
		i := r.IntN(len(ws) - 1)
		edges = append(edges, graph.Edge{Source: ws[i+1].ID, Target: ws[i].ID})
	}
	return ws, edges
}

// tarjan returns the strongly connected components of adj, iteratively.
func tarjan(adj [][]int32) [][]int32 {
	n := len(adj)
	index, low := make([]int32, n), make([]int32, n)
	on := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack, out []int32
	var comps [][]int32
	type frame struct{ v, next int32 }
	var calls []frame
	next := int32(0)
	for s := range n {
		if index[s] >= 0 {
			continue
		}
		calls = append(calls[:0], frame{int32(s), 0})
		index[s], low[s] = next, next
		next++
		stack = append(stack, int32(s))
		on[s] = true
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			if int(f.next) < len(adj[f.v]) {
				w := adj[f.v][f.next]
				f.next++
				switch {
				case index[w] < 0:
					index[w], low[w] = next, next
					next++
					stack = append(stack, w)
					on[w] = true
					calls = append(calls, frame{w, 0})
				case on[w]:
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				p := calls[len(calls)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] == index[v] {
				out = out[:0]
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					on[w] = false
					out = append(out, w)
					if w == v {
						break
					}
				}
				comps = append(comps, append([]int32(nil), out...))
			}
		}
	}
	return comps
}
