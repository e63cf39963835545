package main

import (
	"flag"
	"io"
	"os"
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
