// Package atomicfile writes a file so that a reader, or a crash, never
// sees half of it: the data goes to a temporary file beside it, is synced,
// and replaces the file with one rename.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data, creating its directory (0o755) when
// missing. The temporary file has a name of its own, so two writers never
// share one.
func Write(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), perm); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
