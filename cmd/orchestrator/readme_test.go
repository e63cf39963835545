package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every flag and environment variable of every command appears in the
// configuration reference, docs/configuration.md (the README links to it).
func TestConfigurationReferenceDocumentsEveryFlag(t *testing.T) {
	reference, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(reference)
	for _, cmd := range commands() {
		fs := newFlagSet(cmd.name, io.Discard)
		var lf logFlags
		lf.define(fs, cmd.logLevel)
		cmd.setup(fs)
		fs.VisitAll(func(f *flag.Flag) {
			name := "`--" + f.Name + "`"
			if f.Name != "log-level" && f.Name != "log-format" {
				name = "`" + cmd.name + " --" + f.Name + "`"
			}
			if !strings.Contains(doc, name) {
				t.Errorf("docs/configuration.md does not document %s", name)
			}
			if env := fs.env[f.Name]; env != "" && !strings.Contains(doc, "`"+env+"`") {
				t.Errorf("docs/configuration.md does not document $%s (for %s)", env, name)
			}
		})
	}
}

// The test command the README gives is the one CI (.ci/run) runs.
func TestReadmeTestCommandIsCIs(t *testing.T) {
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var command string
	for line := range strings.Lines(string(ci)) {
		if strings.HasPrefix(line, "go test ") {
			if command != "" {
				t.Fatalf(".ci/run runs two test commands: %q and %q", command, strings.TrimSpace(line))
			}
			command = strings.TrimSpace(line)
		}
	}
	if command == "" {
		t.Fatal(".ci/run runs no go test command")
	}
	if !strings.Contains(string(readme), "```sh\n"+command+"\n```") {
		t.Errorf("the README does not give CI's test command %q as a block of its own", command)
	}
}

// Every relative link of the README and of docs/*.md names a file of the
// repository and, for a Markdown file, a heading it has.
func TestDocsLinksResolve(t *testing.T) {
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "../../README.md")
	fence := regexp.MustCompile("(?s)```.*?```")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		text := fence.ReplaceAllString(string(b), "")
		for _, m := range link.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			file := page
			if path != "" {
				file = filepath.Join(filepath.Dir(page), path)
			}
			if _, err := os.Stat(file); err != nil {
				t.Errorf("%s links to %s, which does not exist", filepath.Base(page), target)
				continue
			}
			if anchor != "" && strings.HasSuffix(file, ".md") && !headingAnchors(t, file)[anchor] {
				t.Errorf("%s links to %s, which has no such heading", filepath.Base(page), target)
			}
		}
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a Markdown
// file: lower case, punctuation dropped, spaces as hyphens.
func headingAnchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	drop := regexp.MustCompile(`[^\p{L}\p{N}_\- ]`)
	anchors := map[string]bool{}
	inFence := false
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		heading, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " ")
		if inFence || !strings.HasPrefix(line, "#") || !ok {
			continue
		}
		heading = drop.ReplaceAllString(strings.ToLower(strings.TrimSpace(heading)), "")
		anchors[strings.ReplaceAll(heading, " ", "-")] = true
	}
	return anchors
}
