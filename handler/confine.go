package handler

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// A module's tree comes from whoever can push a tag, and the handler runs
// as root on every master: the tree must not reach outside its release.
// The kernel decides, not a check of names as strings (a link d -> . makes
// d/d/../.. climb two levels while its text climbs none):
//
//   - every entry is written through an os.Root on the release, which
//     refuses to follow a link out of it;
//   - no entry may lie under one of the archive's links (git trees never
//     have one there);
//   - every symlink is resolved under that root once the tree is unpacked:
//     one that does not end at an entry of the module fails the sync,
//     naming it, and nothing is installed (docs/security.md, symlink
//     policy);
//   - commitFile is serfdeploy's own name: a tree that carries it is
//     refused, and serfdeploy creates it with O_EXCL, which never follows
//     a link.

// untar writes a git archive into dest and checks its symlinks.
func untar(r io.Reader, dest string) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	links := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if name == "." || strings.HasPrefix(name, "..") || filepath.IsAbs(name) {
			if h.Typeflag == tar.TypeXGlobalHeader || name == "." {
				continue
			}
			return refuse("refusing path %q outside the module", h.Name)
		}
		if name == commitFile {
			return refuse("refusing %s: serfdeploy keeps that name for the commit it installed; remove it from the module", commitFile)
		}
		if sparse(h) {
			// A few bytes of sparse map can stand for terabytes of zeros;
			// git archive never writes one.
			return refuse("refusing %q: a sparse file is not from git archive", h.Name)
		}
		if err := noLinkAbove(links, name); err != nil {
			return err
		}
		if err := unpackEntry(root, tr, h, name); err != nil {
			return fmt.Errorf("unpacking %q: %w", h.Name, err)
		}
		if h.Typeflag == tar.TypeSymlink {
			links[name] = true
		}
	}
	return checkLinks(root)
}

// noLinkAbove refuses an entry that lies under one of the archive's own
// symlinks: git never archives one there, and os.Root would follow it
// (inside the module, but onto another entry's name). links holds the
// cleaned names of the links made so far; as every other directory on the
// way is a real one, going through a link means one of name's parents is
// in it. A set rather than an Lstat of each parent: that costs depth²
// lookups an entry, which a path thousands of levels deep turns into
// minutes.
func noLinkAbove(links map[string]bool, name string) error {
	for dir := filepath.Dir(name); dir != "."; dir = filepath.Dir(dir) {
		if links[dir] {
			return refuse("refusing %q: it lies under the symlink %s", name, dir)
		}
	}
	return nil
}

// unpackEntry writes one archive entry under root.
func unpackEntry(root *os.Root, tr *tar.Reader, h *tar.Header, name string) error {
	switch h.Typeflag {
	case tar.TypeDir:
		return root.MkdirAll(name, 0o755)
	case tar.TypeReg:
		if err := root.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if h.Mode&0o111 != 0 {
			mode = 0o755
		}
		f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	case tar.TypeSymlink:
		// Kept as written; checkLinks decides once every entry it may
		// point at exists.
		if err := root.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			return err
		}
		return root.Symlink(h.Linkname, name)
	case tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		// git archive makes none of these: such an archive is not a
		// module's tree.
		return refuse("refusing a %s entry: a module holds files, directories and symlinks only", typeName(h.Typeflag))
	}
	// Global headers (git archive's commit id) and submodule entries are
	// not part of a module's files.
	return nil
}

// sparse says whether h is a GNU sparse file, in either of its forms.
func sparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func typeName(t byte) string {
	switch t {
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	}
	return "fifo"
}

// maxNamed bounds how many refused links an error names: the message
// travels back to the CLI in a serf query answer of about 1 KB.
const maxNamed = 3

// checkLinks resolves every symlink under root, as the kernel would,
// through the module's own entries: root.Stat fails for a link that is
// absolute, climbs out by any path, loops, or ends at nothing. Each such
// link is named in the error.
func checkLinks(root *os.Root) error {
	var bad []string
	err := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if _, err := root.Stat(p); err != nil {
			target, _ := root.Readlink(p)
			bad = append(bad, fmt.Sprintf("%s -> %s (%s)", p, shorten(target), linkProblem(err)))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking the module's symlinks: %w", err)
	}
	if len(bad) == 0 {
		return nil
	}
	more := ""
	if len(bad) > maxNamed {
		more = fmt.Sprintf(" and %d more", len(bad)-maxNamed)
		bad = bad[:maxNamed]
	}
	return refuse("refusing symlink %s%s: a module's links must resolve to a file or directory inside the module", strings.Join(bad, ", "), more)
}

// linkProblem says in a few words why a link was refused.
func linkProblem(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.Is(err, fs.ErrNotExist) {
		return "points at nothing in the module"
	}
	if errors.Is(err, syscall.ELOOP) {
		// os.Root follows at most 8 links to resolve one path.
		return "more than 8 links to follow"
	}
	if strings.Contains(err.Error(), "escapes") {
		return "leaves the module"
	}
	return err.Error()
}

// shorten keeps a long link target readable in a one-line error.
func shorten(s string) string {
	if len(s) <= 60 {
		return s
	}
	return s[:28] + "..." + s[len(s)-28:]
}

// writeCommit records commit in the release for the config_version
// script. O_EXCL fails on any existing name, a link included, so the write
// can only create a new regular file in the release itself.
func writeCommit(release, commit string) error {
	root, err := os.OpenRoot(release)
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := root.OpenFile(commitFile, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("recording the commit: %w", err)
	}
	_, err = f.WriteString(commit + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// refusedError is a module tree refused for what it holds, not for a
// failure to read it: no retry of the same ref can fix it, so the deploy
// is bad input (exit 2), not an infrastructure failure a pipeline retries.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

func refuse(format string, args ...any) error {
	return &refusedError{fmt.Sprintf(format, args...)}
}
