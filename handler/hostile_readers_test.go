package handler

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPuppetFileReadersAreBounded: the node-side readers the fleet view
// added (Puppet's summary, its class file) are pointed, through a chain of
// symlinks, at an endless file and at a directory; each gives up with a
// reason instead of reading without end or panicking.
func TestPuppetFileReadersAreBounded(t *testing.T) {
	dir := t.TempDir()
	hop := filepath.Join(dir, "hop")
	if err := os.Symlink("/dev/zero", hop); err != nil {
		t.Fatal(err)
	}
	endless := filepath.Join(dir, "endless")
	if err := os.Symlink(hop, endless); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{endless, dir} {
		if _, err := readLastRunSummary(path); err == nil {
			t.Errorf("summary %s: read without an error", path)
		}
		if _, err := readClasses(path); err == nil || strings.Contains(err.Error(), "does not exist") {
			t.Errorf("classes %s: %v", path, err)
		}
	}
}
