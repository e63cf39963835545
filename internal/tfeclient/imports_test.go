package tfeclient_test

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// goTFEImporters are the packages (their code, not their tests, nor a
// test-support package only tests import) allowed to import go-tfe: cmd/,
// internal/app's wiring and internal/tfeclient only. The others reach TFE
// through the interfaces and the types of this package. Never lengthen the
// list.
var goTFEImporters = []string{
	"cmd/orchestrator",
	"internal/app",
	"internal/tfeclient",
}

func TestOnlyAllowedPackagesImportGoTFE(t *testing.T) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...")
	cmd.Dir = root
	out, err = cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/tfe-orchestrator/orchestrator/"
	var importers []string
	importedByCode := map[string]bool{} // packages some package's code (not its tests) imports
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		for _, imp := range fields[1:] {
			importedByCode[strings.TrimPrefix(imp, module)] = true
		}
		if slices.Contains(fields[1:], "github.com/hashicorp/go-tfe") {
			importers = append(importers, strings.TrimPrefix(fields[0], module))
		}
	}
	if len(importers) == 0 {
		t.Fatalf("no package imports go-tfe: the listing is wrong\n%s", out)
	}
	for _, p := range importers {
		// A test-support package (named like net/http/httptest) that only
		// tests import is test code: it serves the simulator to go-tfe.
		if strings.HasSuffix(p, "test") && !importedByCode[p] {
			continue
		}
		if !slices.Contains(goTFEImporters, p) {
			t.Errorf("%s imports go-tfe: reach TFE through internal/tfeclient instead", p)
		}
	}
	for _, p := range goTFEImporters {
		if !slices.Contains(importers, p) {
			t.Errorf("%s no longer imports go-tfe: take it off the list", p)
		}
	}
}
