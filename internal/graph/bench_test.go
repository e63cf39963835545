package graph_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	lib "github.com/dominikbraun/graph"

	"github.com/tfe-orchestrator/orchestrator/internal/graph"
)

// Benchmarks at the scale of the largest installations:
//
//	go test ./internal/graph -run '^$' -bench . -benchmem
//
// Results and the goals they are held to are in docs/benchmarks.md.

// dag returns n workspaces in components of size comp; each workspace has
// an edge to the next one of its component and two to random later ones, so
// every component is acyclic and its first workspace's closure is all of it.
func dag(n, comp int) ([]graph.Workspace, []graph.Edge) {
	r := rand.New(rand.NewPCG(uint64(n), uint64(comp)))
	ws := make([]graph.Workspace, n)
	for i := range ws {
		ws[i] = graph.Workspace{ID: fmt.Sprintf("ws-%016d", i), Name: fmt.Sprintf("workspace-%07d", i)}
	}
	edges := make([]graph.Edge, 0, 3*n)
	for i := range n {
		end := (i/comp + 1) * comp
		if end > n {
			end = n
		}
		if i+1 < end {
			edges = append(edges, graph.Edge{Source: ws[i].ID, Target: ws[i+1].ID})
		}
		for range 2 {
			if i+1 < end {
				edges = append(edges, graph.Edge{Source: ws[i].ID, Target: ws[i+1+r.IntN(end-i-1)].ID})
			}
		}
	}
	return ws, edges
}

var sizes = []int{1_000, 10_000, 100_000}

// BenchmarkBuildAndCycles builds a random graph of n workspaces with three
// edges each (full of cycles: the worst case for cycle detection) and finds
// its cycles.
func BenchmarkBuildAndCycles(b *testing.B) {
	for _, n := range sizes {
		ws, edges := randomGraph(rand.New(rand.NewPCG(1, uint64(n))), n, 3)
		b.Run(fmt.Sprintf("workspaces=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g, err := graph.New(ws, edges)
				if err != nil {
					b.Fatal(err)
				}
				if len(g.Cycles()) == 0 {
					b.Fatal("no cycle in a random graph")
				}
			}
		})
	}
}

// BenchmarkBuildAndCyclesDAG is the same on acyclic graphs, the usual
// shape of run triggers.
func BenchmarkBuildAndCyclesDAG(b *testing.B) {
	for _, n := range sizes {
		ws, edges := dag(n, n)
		b.Run(fmt.Sprintf("workspaces=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g, err := graph.New(ws, edges)
				if err != nil {
					b.Fatal(err)
				}
				if len(g.Cycles()) != 0 {
					b.Fatal("a cycle in a DAG")
				}
			}
		})
	}
}

// BenchmarkPlan resolves the cascade from a root whose closure is about
// 1,000 workspaces, in graphs of growing size: the cost must not grow
// with the graph.
func BenchmarkPlan(b *testing.B) {
	for _, n := range sizes {
		ws, edges := dag(n, 1000)
		g, err := graph.New(ws, edges)
		if err != nil {
			b.Fatal(err)
		}
		root := ws[0].ID
		closure, _ := g.Closure(root)
		b.Run(fmt.Sprintf("workspaces=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.Plan(root); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(closure)), "closure")
		})
	}
}

// BenchmarkPlanWholeGraph resolves a cascade whose closure is nearly the
// whole graph.
func BenchmarkPlanWholeGraph(b *testing.B) {
	for _, n := range sizes {
		ws, edges := dag(n, n)
		g, err := graph.New(ws, edges)
		if err != nil {
			b.Fatal(err)
		}
		closure, _ := g.Closure(ws[0].ID)
		b.Run(fmt.Sprintf("workspaces=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.Plan(ws[0].ID); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(closure)), "closure")
		})
	}
}

// BenchmarkLibraryTopologicalSort is dominikbraun/graph's own ordering of a
// 10,000-workspace DAG, for comparison (graph built outside the timing).
func BenchmarkLibraryTopologicalSort(b *testing.B) {
	ws, edges := dag(10_000, 10_000)
	g := lib.New(lib.StringHash, lib.Directed())
	for _, w := range ws {
		_ = g.AddVertex(w.ID)
	}
	for _, e := range edges {
		_ = g.AddEdge(e.Source, e.Target)
	}
	b.ReportAllocs()
	for b.Loop() {
		order, err := lib.TopologicalSort(g)
		if err != nil || len(order) != len(ws) {
			b.Fatal(err)
		}
	}
}

// BenchmarkLibraryBuildAndSCC is dominikbraun/graph building the same
// random graphs as BenchmarkBuildAndCycles and finding their strongly
// connected components.
func BenchmarkLibraryBuildAndSCC(b *testing.B) {
	for _, n := range sizes {
		ws, edges := randomGraph(rand.New(rand.NewPCG(1, uint64(n))), n, 3)
		b.Run(fmt.Sprintf("workspaces=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g := lib.New(lib.StringHash, lib.Directed())
				for _, w := range ws {
					_ = g.AddVertex(w.ID)
				}
				for _, e := range edges {
					_ = g.AddEdge(e.Source, e.Target)
				}
				if _, err := lib.StronglyConnectedComponents(g); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
