package nodesetup

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/serfdeploy/serfdeploy/internal/atomicfile"
)

// File modes, whatever the umask: a file holding a key is the owner's
// alone.
const (
	modeSecret = 0o600
	modePublic = 0o644
	modeDir    = 0o755
)

// readIfExists returns a file's content, nil when it does not exist.
func readIfExists(path string) ([]byte, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, true, nil
}

// pending is a file to write once every file has been worked out, so
// that input refused halfway leaves every file as it was.
type pending struct {
	path string
	data []byte
	mode fs.FileMode
}

// writeFile replaces path with data and mode when either differs, and
// reports the mode when that changed. Content changes are reported by the
// caller, setting by setting.
func writeFile(r *Result, path string, data []byte, mode fs.FileMode) error {
	old, existed, err := readIfExists(path)
	if err != nil {
		return err
	}
	var oldMode fs.FileMode
	if existed {
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		oldMode = fi.Mode().Perm()
	}
	if existed && bytes.Equal(old, data) && oldMode == mode {
		return nil
	}
	// atomicfile sets the mode with chmod, which the umask does not touch.
	if err := atomicfile.Write(path, data, mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	switch {
	case !existed:
		r.change(path, "created, mode %04o", mode)
	case oldMode != mode:
		r.change(path, "mode %04o -> %04o", oldMode, mode)
	}
	return nil
}

// ensureDir creates a missing directory with mode 0755 whatever the
// umask; an existing one is left as it is.
func ensureDir(r *Result, path string) error {
	if fi, err := os.Stat(path); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", path)
		}
		return nil
	}
	if err := os.MkdirAll(path, modeDir); err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if err := os.Chmod(path, modeDir); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r.change(path, "created (directory)")
	return nil
}
