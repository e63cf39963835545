package graph

import (
	"fmt"
	"slices"
)

// Plan is the cascade a root workspace starts when it applies.
type Plan struct {
	// Root is the workspace that applied.
	Root string `json:"root"`
	// Layers is the dispatch order: Layers[0] is the root; every workspace
	// of layer k has all of its barrier in layers before k. Within a layer,
	// workspaces are in graph order. Blocked workspaces are in no layer.
	Layers [][]string `json:"layers"`
	// Barriers maps each closure member but the root to its upstreams in
	// the closure, the workspaces that must apply before it runs.
	Barriers map[string][]string `json:"barriers"`
	// FanIn lists the members with more than one upstream in the closure.
	FanIn []string `json:"fan_in,omitempty"`
	// Blocked lists the members that can never be dispatched because they
	// sit on a cycle or depend on one, in graph order.
	Blocked []Blocked `json:"blocked,omitempty"`
	// Cycles are the cycles inside the closure.
	Cycles []Cycle `json:"cycles,omitempty"`
}

// Blocked is a closure member a cycle keeps from running.
type Blocked struct {
	ID string `json:"id"`
	// OnCycle is true for a member of the cycle itself, false for a
	// workspace downstream of it.
	OnCycle bool `json:"on_cycle"`
	// Cycle is the first cycle, in graph order, that it sits on or depends on.
	Cycle Cycle `json:"cycle"`
}

// Closure returns the IDs of the workspaces reachable from root, root
// first, then in breadth-first order.
func (g *Graph) Closure(root string) ([]string, error) {
	r, ok := g.index[root]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownWorkspace, root)
	}
	members, _ := g.closure(r)
	return g.ids(members), nil
}

// closure returns the members reachable from r (r first, breadth-first)
// and each member's position in that list.
func (g *Graph) closure(r int32) ([]int32, map[int32]int32) {
	local := map[int32]int32{r: 0}
	members := []int32{r}
	for i := 0; i < len(members); i++ {
		for _, w := range g.out.of(members[i]) {
			if _, seen := local[w]; !seen {
				local[w] = int32(len(members))
				members = append(members, w)
			}
		}
	}
	return members, local
}

// Plan resolves the cascade from root. Its cost is linear in the size of
// the closure and its edges, not of the graph.
func (g *Graph) Plan(root string) (*Plan, error) {
	r, ok := g.index[root]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownWorkspace, root)
	}
	members, local := g.closure(r)
	n := len(members)

	// The closure's own adjacency, in local indices. A closure is closed
	// under out-edges, so every out-edge of a member stays inside.
	out := adjacency{off: make([]int32, n+1)}
	for i, v := range members {
		out.off[i+1] = out.off[i] + int32(len(g.out.of(v)))
	}
	out.to = make([]int32, out.off[n])
	selfLoop := make([]bool, n)
	for i, v := range members {
		for j, w := range g.out.of(v) {
			out.to[out.off[i]+int32(j)] = local[w]
		}
		selfLoop[i] = g.selfLoop[v]
	}
	globalID := func(l int32) string { return g.ws[members[l]].ID }

	comp, count := sccs(n, &out)
	cycles := cyclesOf(comp, count, &out, selfLoop, func(l int32) int32 { return members[l] }, globalID)

	p := &Plan{Root: root, Barriers: make(map[string][]string, n-1), Cycles: cycles}

	// Which cycle blocks each member: the members of a cycle (but the
	// root, which has already run), then everything downstream of them.
	// Cycles are taken in graph order, so a member that depends on several
	// is blamed on the first.
	cycleOfComp := make(map[int32]int32, len(cycles))
	for ci, cy := range cycles {
		cycleOfComp[comp[local[g.index[cy.Members[0]]]]] = int32(ci)
	}
	onCycle := make([][]int32, len(cycles))
	for l := int32(1); l < int32(n); l++ {
		if ci, ok := cycleOfComp[comp[l]]; ok {
			onCycle[ci] = append(onCycle[ci], l)
		}
	}
	blockedBy := make([]int32, n) // index into cycles, -1 when not blocked
	for i := range blockedBy {
		blockedBy[i] = -1
	}
	for ci, start := range onCycle {
		var frontier []int32
		for _, l := range start {
			if blockedBy[l] < 0 {
				blockedBy[l] = int32(ci)
				frontier = append(frontier, l)
			}
		}
		for len(frontier) > 0 {
			u := frontier[len(frontier)-1]
			frontier = frontier[:len(frontier)-1]
			for _, w := range out.of(u) {
				if w != 0 && blockedBy[w] < 0 {
					blockedBy[w] = int32(ci)
					frontier = append(frontier, w)
				}
			}
		}
	}

	// Barriers and in-degrees inside the closure; edges into the root and
	// self edges do not hold anything back.
	indeg := make([]int32, n)
	var fanIn []int32
	backing := make([]string, 0, len(out.to)) // every barrier slices this, one allocation
	for l := 1; l < n; l++ {
		v := members[l]
		from := len(backing)
		for _, u := range g.in.of(v) {
			if _, in := local[u]; !in || u == v {
				continue
			}
			backing = append(backing, g.ws[u].ID)
			indeg[l]++
		}
		barrier := backing[from:len(backing):len(backing)]
		p.Barriers[g.ws[v].ID] = barrier
		if len(barrier) > 1 {
			fanIn = append(fanIn, int32(l))
		}
	}
	p.FanIn = g.ids(globalOf(byGraphOrder(fanIn, members), members))

	// Layers: Kahn's algorithm from the root over the unblocked members.
	layer := []int32{0}
	for len(layer) > 0 {
		slices.SortFunc(layer, func(a, b int32) int { return int(members[a] - members[b]) })
		ids := make([]string, len(layer))
		for i, l := range layer {
			ids[i] = globalID(l)
		}
		p.Layers = append(p.Layers, ids)
		var next []int32
		for _, u := range layer {
			for _, w := range out.of(u) {
				if w == 0 || w == u || blockedBy[w] >= 0 {
					continue
				}
				indeg[w]--
				if indeg[w] == 0 {
					next = append(next, w)
				}
			}
		}
		layer = next
	}

	var blocked []int32
	for l := int32(1); l < int32(n); l++ {
		if blockedBy[l] >= 0 {
			blocked = append(blocked, l)
		}
	}
	for _, l := range byGraphOrder(blocked, members) {
		_, on := cycleOfComp[comp[l]]
		p.Blocked = append(p.Blocked, Blocked{ID: globalID(l), OnCycle: on, Cycle: cycles[blockedBy[l]]})
	}
	return p, nil
}

// globalOf maps local indices to graph indices, in place.
func globalOf(locals, members []int32) []int32 {
	for i, l := range locals {
		locals[i] = members[l]
	}
	return locals
}

// byGraphOrder sorts local indices by the graph order of their workspaces,
// in place, and returns them.
func byGraphOrder(locals, members []int32) []int32 {
	slices.SortFunc(locals, func(a, b int32) int { return int(members[a] - members[b]) })
	return locals
}
