package graph

import (
	"cmp"
	"slices"
	"strings"
)

// Cycle is a strongly connected component of more than one workspace, or a
// workspace with an edge to itself.
type Cycle struct {
	// Members are the IDs of the component's workspaces, in graph order.
	Members []string `json:"members"`
	// Path is one cycle through the component's first member, as short as
	// possible, closed: it ends where it starts (app → db → app).
	Path []string `json:"path"`
}

// String names the cycle by its path of IDs.
func (c Cycle) String() string { return strings.Join(c.Path, " → ") }

// Names names the cycle by workspace names: "app → db → app".
func (c Cycle) Names(g *Graph) string {
	names := make([]string, len(c.Path))
	for i, id := range c.Path {
		names[i] = g.Name(id)
	}
	return strings.Join(names, " → ")
}

// Cycles returns every cycle of the graph, one per strongly connected
// component, ordered by first member.
func (g *Graph) Cycles() []Cycle {
	comp, count := sccs(len(g.ws), &g.out)
	return cyclesOf(comp, count, &g.out, g.selfLoop, func(v int32) int32 { return v }, func(v int32) string { return g.ws[v].ID })
}

// sccs labels each vertex of the graph (n vertices, edges out) with its
// strongly connected component, by Tarjan's algorithm without recursion,
// in O(V + E).
func sccs(n int, out *adjacency) (comp []int32, count int32) {
	index := make([]int32, n) // 0: not visited yet
	low := make([]int32, n)
	onStack := make([]bool, n)
	comp = make([]int32, n)
	var stack []int32
	type frame struct{ v, next int32 }
	var calls []frame
	counter := int32(1)
	visit := func(v int32) {
		index[v], low[v] = counter, counter
		counter++
		stack = append(stack, v)
		onStack[v] = true
		calls = append(calls, frame{v: v, next: out.off[v]})
	}
	for s := range int32(n) {
		if index[s] != 0 {
			continue
		}
		visit(s)
		for len(calls) > 0 {
			top := len(calls) - 1
			v := calls[top].v
			if e := calls[top].next; e < out.off[v+1] {
				calls[top].next++
				w := out.to[e]
				if index[w] == 0 {
					visit(w)
				} else if onStack[w] {
					low[v] = min(low[v], index[w])
				}
				continue
			}
			if low[v] == index[v] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = count
					if w == v {
						break
					}
				}
				count++
			}
			calls = calls[:top]
			if top > 0 {
				p := calls[top-1].v
				low[p] = min(low[p], low[v])
			}
		}
	}
	return comp, count
}

// cyclesOf turns component labels into Cycles: components of more than one
// vertex, and single vertices with a self edge. rank gives a vertex's place
// in graph order, id its ID. Members are in graph order, paths start at the
// first member, and cycles are ordered by first member.
func cyclesOf(comp []int32, count int32, out *adjacency, selfLoop []bool, rank func(int32) int32, id func(int32) string) []Cycle {
	size := make([]int32, count)
	for v, c := range comp {
		size[c]++
		if selfLoop[v] {
			size[c]++ // a self edge makes even a single vertex cyclic
		}
	}
	members := map[int32][]int32{}
	for v, c := range comp {
		if size[c] > 1 {
			members[c] = append(members[c], int32(v))
		}
	}
	cyclic := make([][]int32, 0, len(members))
	for _, vs := range members {
		slices.SortFunc(vs, func(a, b int32) int { return cmp.Compare(rank(a), rank(b)) })
		cyclic = append(cyclic, vs)
	}
	slices.SortFunc(cyclic, func(a, b []int32) int { return cmp.Compare(rank(a[0]), rank(b[0])) })
	cycles := make([]Cycle, 0, len(cyclic))
	for _, vs := range cyclic {
		cy := Cycle{Members: make([]string, len(vs))}
		for i, v := range vs {
			cy.Members[i] = id(v)
		}
		for _, v := range shortestCycle(vs[0], comp, out) {
			cy.Path = append(cy.Path, id(v))
		}
		cycles = append(cycles, cy)
	}
	return cycles
}

// shortestCycle finds, by breadth-first search inside start's component,
// a shortest path from start back to itself, closed.
func shortestCycle(start int32, comp []int32, out *adjacency) []int32 {
	parent := map[int32]int32{start: -1}
	queue := []int32{start}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, w := range out.of(u) {
			if w == start {
				path := []int32{start}
				for x := u; x != -1; x = parent[x] {
					path = append(path, x)
				}
				slices.Reverse(path)
				return path
			}
			if _, seen := parent[w]; seen || comp[w] != comp[start] {
				continue
			}
			parent[w] = u
			queue = append(queue, w)
		}
	}
	return []int32{start} // not reached: every vertex of a cyclic component lies on a cycle
}
