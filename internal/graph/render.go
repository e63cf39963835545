package graph

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MaxSources is TFE's limit of run-trigger sources per workspace.
const MaxSources = 20

// Finding kinds.
const (
	FindingCycle       = "cycle"
	FindingSourceLimit = "source_limit"
	FindingLocalTarget = "local_target"
	FindingDangling    = "dangling_edge"
)

// Finding is a problem in the graph worth an operator's attention.
type Finding struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
	// Workspaces names the workspaces the finding is about, in order, for
	// tools: a cycle's path, closed (app, db, app); the target at the limit
	// of sources; a run trigger's source and target (an ID where that end
	// is not a known workspace).
	Workspaces []string `json:"workspaces"`
}

// Lint returns the graph's findings: cycles, targets at TFE's limit of
// sources, edges into workspaces that cannot run remotely, and edges whose
// ends are missing, in that order.
func (g *Graph) Lint() []Finding {
	var out []Finding
	for _, c := range g.Cycles() {
		out = append(out, Finding{FindingCycle, c.Names(g), g.nameList(c.Path)})
	}
	for v, w := range g.ws {
		if n := len(g.in.of(int32(v))); n >= MaxSources {
			out = append(out, Finding{FindingSourceLimit,
				fmt.Sprintf("%s has %d source workspaces, TFE's limit is %d", w.Name, n, MaxSources), []string{w.Name}})
		}
	}
	for _, e := range g.edges {
		if t, _ := g.Workspace(e.Target); t.ExecutionMode == "local" {
			out = append(out, Finding{FindingLocalTarget,
				fmt.Sprintf("%s → %s: %s uses local execution and cannot run remotely", g.Name(e.Source), t.Name, t.Name),
				g.nameList([]string{e.Source, e.Target})})
		}
	}
	for _, e := range g.dangling {
		out = append(out, Finding{FindingDangling,
			fmt.Sprintf("%s → %s: %s", g.Name(e.Source), g.Name(e.Target), g.danglingEnd(e)), g.nameList([]string{e.Source, e.Target})})
	}
	return out
}

// nameList returns the names of the workspaces ids (an ID where it is not
// a known workspace).
func (g *Graph) nameList(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = g.Name(id)
	}
	return out
}

func (g *Graph) danglingEnd(e Edge) string {
	_, s := g.index[e.Source]
	_, t := g.index[e.Target]
	switch {
	case !s && !t:
		return "neither end is a known workspace"
	case !s:
		return "the source is not a known workspace"
	default:
		return "the target is not a known workspace"
	}
}

// Document is the JSON form of a graph, which New reads back.
type Document struct {
	Workspaces []Workspace `json:"workspaces"`
	Edges      []Edge      `json:"edges"`
	// Findings are the graph's lints (cycles first), for tools that read
	// the document; reading a document ignores them.
	Findings []Finding `json:"findings"`
	// Cycles are the graph's run-trigger cycles, one per strongly
	// connected component, with their workspaces as lists; reading a
	// document ignores them too.
	Cycles []DocumentCycle `json:"cycles"`
}

// DocumentCycle is a cycle in a Document.
type DocumentCycle struct {
	// Workspaces are the names along one cycle through the component's
	// first member, closed: app, db, app.
	Workspaces []string `json:"workspaces"`
	// IDs are the same path by workspace ID.
	IDs []string `json:"ids"`
	// Members are the names of every workspace of the component, in graph
	// order (a component may hold more than one cycle's path).
	Members []string `json:"members"`
}

// Document returns the graph as a Document, dangling edges included, so
// that reading it back gives the same graph.
func (g *Graph) Document() Document {
	return g.document(g.Workspaces(), append(g.Edges(), g.dangling...))
}

// document builds the Document from the given lists (WriteJSON passes the
// graph's own, which it only reads, to spare two copies of them).
func (g *Graph) document(ws []Workspace, edges []Edge) Document {
	if edges == nil {
		edges = []Edge{}
	}
	findings := g.Lint()
	if findings == nil {
		findings = []Finding{}
	}
	cycles := []DocumentCycle{}
	for _, c := range g.Cycles() {
		cycles = append(cycles, DocumentCycle{Workspaces: g.nameList(c.Path), IDs: c.Path, Members: g.nameList(c.Members)})
	}
	return Document{Workspaces: ws, Edges: edges, Findings: findings, Cycles: cycles}
}

// FromDocument builds the graph a Document describes.
func FromDocument(d Document) (*Graph, error) { return New(d.Workspaces, d.Edges) }

// WriteJSON writes the graph as a Document, one workspace, edge, finding
// or cycle a line. Indenting the whole document with encoding/json took
// about half the time of the graph command on 100,000 workspaces; this
// marshals each list once and only breaks its lines.
func (g *Graph) WriteJSON(w io.Writer) error {
	edges := g.edges
	if len(g.dangling) > 0 {
		edges = append(g.Edges(), g.dangling...)
	}
	d := g.document(g.ws, edges)
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString("{\n")
	for k, part := range []struct {
		name string
		v    any
	}{{"workspaces", d.Workspaces}, {"edges", d.Edges}, {"findings", d.Findings}, {"cycles", d.Cycles}} {
		data, err := json.Marshal(part.v)
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "  %q: ", part.name)
		lineList(bw, data)
		if k < 3 {
			bw.WriteByte(',')
		}
		bw.WriteByte('\n')
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// lineList writes a compact JSON array with each element on a line of its
// own, indented under its key.
func lineList(w *bufio.Writer, data []byte) {
	if len(data) <= 2 { // [] or null
		w.Write(data)
		return
	}
	depth, inString, escaped, start := 0, false, false, 0
	for i, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth == 1 {
				w.WriteString("[\n    ")
				start = i + 1
			}
		case c == ']' || c == '}':
			depth--
			if depth == 0 {
				w.Write(data[start:i])
				w.WriteString("\n  ]")
			}
		case c == ',' && depth == 1:
			w.Write(data[start : i+1])
			w.WriteString("\n    ")
			start = i + 1
		}
	}
}

// WriteText writes one line per workspace with downstream workspaces:
// "network → cluster, dns".
func (g *Graph) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d workspaces, %d run triggers\n", len(g.ws), len(g.edges))
	for v, ws := range g.ws {
		targets := g.out.of(int32(v))
		if len(targets) == 0 {
			continue
		}
		names := make([]string, len(targets))
		for i, t := range targets {
			names[i] = g.ws[t].Name
		}
		fmt.Fprintf(&b, "%s → %s\n", ws.Name, strings.Join(names, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteDOT writes the graph in Graphviz's DOT language. Workspaces on a
// cycle are drawn red.
func (g *Graph) WriteDOT(w io.Writer) error {
	onCycle := g.onCycle()
	var b strings.Builder
	b.WriteString("digraph runtriggers {\n  rankdir=LR;\n  node [shape=box];\n")
	for v, ws := range g.ws {
		attrs := "label=" + strconv.Quote(ws.Name)
		if onCycle[v] {
			attrs += ", color=red"
		}
		if ws.ExecutionMode == "local" {
			attrs += ", style=dashed"
		}
		fmt.Fprintf(&b, "  %s [%s];\n", strconv.Quote(ws.ID), attrs)
	}
	for _, e := range g.edges {
		fmt.Fprintf(&b, "  %s -> %s;\n", strconv.Quote(e.Source), strconv.Quote(e.Target))
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMermaid writes the graph as a Mermaid flowchart.
func (g *Graph) WriteMermaid(w io.Writer) error {
	onCycle := g.onCycle()
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	for v, ws := range g.ws {
		fmt.Fprintf(&b, "  n%d[%q]\n", v, ws.Name)
	}
	for v := range g.ws {
		for _, t := range g.out.of(int32(v)) {
			fmt.Fprintf(&b, "  n%d --> n%d\n", v, t)
		}
	}
	var red []string
	for v := range g.ws {
		if onCycle[v] {
			red = append(red, "n"+strconv.Itoa(v))
		}
	}
	if len(red) > 0 {
		b.WriteString("  classDef cycle stroke:#d00,stroke-width:2px\n")
		fmt.Fprintf(&b, "  class %s cycle\n", strings.Join(red, ","))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (g *Graph) onCycle() []bool {
	on := make([]bool, len(g.ws))
	for _, c := range g.Cycles() {
		for _, id := range c.Members {
			on[g.index[id]] = true
		}
	}
	return on
}

// WritePlan writes a cascade plan for a person: the layers with each
// member's barrier, then what is blocked and why.
func (g *Graph) WritePlan(w io.Writer, p *Plan) error {
	var b strings.Builder
	fmt.Fprintf(&b, "cascade from %s (%s)\n", g.Name(p.Root), p.Root)
	for i, layer := range p.Layers[1:] {
		fmt.Fprintf(&b, "  layer %d:\n", i+1)
		for _, id := range layer {
			fmt.Fprintf(&b, "    %s  after %s\n", g.Name(id), g.names(p.Barriers[id]))
		}
	}
	if len(p.Layers) == 1 {
		b.WriteString("  nothing runs downstream\n")
	}
	if len(p.Blocked) > 0 {
		b.WriteString("  blocked:\n")
		for _, bl := range p.Blocked {
			why := "downstream of cycle "
			if bl.OnCycle {
				why = "on cycle "
			}
			fmt.Fprintf(&b, "    %s  %s%s\n", g.Name(bl.ID), why, bl.Cycle.Names(g))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (g *Graph) names(ids []string) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = g.Name(id)
	}
	return strings.Join(names, ", ")
}
