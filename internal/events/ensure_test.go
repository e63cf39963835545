package events_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every stream and bucket is created through EnsureStream and
// EnsureKeyValue, which retry and use what is there as wanted: no other
// code outside tests creates or updates one.
func TestOneBucketHelper(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the module's root is not %s: %v", root, err)
	}
	banned := []string{"CreateKeyValue(", "CreateOrUpdateKeyValue(", "UpdateKeyValue(", "CreateStream(", "CreateOrUpdateStream(", "UpdateStream("}
	helper := filepath.Join(root, "internal", "events", "stream.go")
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || path == helper {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		for i, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "//") {
				continue
			}
			for _, b := range banned {
				if strings.Contains(line, b) {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s:%d calls %s: create streams and buckets with events.EnsureStream and events.EnsureKeyValue", rel, i+1, strings.TrimSuffix(b, "("))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked %d files: the test does not see the module", checked)
	}
}
