package handler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"golang.org/x/sys/unix"
)

// gitSource returns the git URL a module is fetched from.
func (n *Node) gitSource(module string) (string, error) {
	if url, ok := n.cfg.Master.Modules[module]; ok {
		return url, nil
	}
	if n.cfg.Master.GitURL != "" {
		return strings.ReplaceAll(n.cfg.Master.GitURL, "{module}", module), nil
	}
	return "", fmt.Errorf("%w: no git source for module %s on master %s: add it under master.modules in %s", errUnknownModule, module, n.name, n.cfgPath)
}

// Sync failures that no retry can fix: the deploy named something that does
// not exist. The CLI reports them as bad input (exit 2), not as
// infrastructure (exit 5, which a pipeline retries).
var (
	errUnknownModule = errors.New("unknown module")
	errUnknownRef    = errors.New("unknown git ref")
)

// missingRepo tells git's "no such repository" from a network failure.
func missingRepo(gitMessage string) bool {
	for _, s := range []string{"does not appear to be a git repository", "not found", "No such file or directory", "does not exist"} {
		if strings.Contains(gitMessage, s) {
			return true
		}
	}
	return false
}

// fetchModule fetches url at ref into a fresh directory under dir and
// returns the commit it resolved to. The ref has been validated, so it can
// never be read as an option; git runs without a shell, and the whole
// fetch within timeout.
func fetchModule(ctx context.Context, url, ref, dest string, timeout time.Duration) (commit string, err error) {
	repo, err := os.MkdirTemp(filepath.Dir(dest), ".fetch-*")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(repo)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		// git runs helpers (git-remote-http) that hold its output open:
		// stop the whole group, and do not wait for the pipes forever.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = time.Second
		if err := cmd.Run(); err != nil {
			if ctx.Err() == context.DeadlineExceeded {
				return "", fmt.Errorf("git fetch of %s timed out after %s", url, timeout)
			}
			msg := strings.Join(strings.Fields(errOut.String()), " ")
			if msg == "" {
				msg = err.Error()
			}
			return "", errors.New(protocol.Truncate(msg, 500))
		}
		return strings.TrimSpace(out.String()), nil
	}
	if _, err := git("init", "-q"); err != nil {
		return "", fmt.Errorf("git init: %w", err)
	}
	// A branch or tag name fetches directly; a commit id may not be
	// advertised, so fall back to fetching every branch and tag.
	if _, ferr := git("fetch", "-q", "--depth", "1", "--", url, ref); ferr == nil {
		commit, err = git("rev-parse", "--verify", "FETCH_HEAD^{commit}")
	} else if ctx.Err() != nil {
		return "", ferr // timed out: a second fetch cannot do better
	} else {
		if _, err := git("fetch", "-q", "--", url, "+refs/heads/*:refs/remotes/src/*", "+refs/tags/*:refs/tags/*"); err != nil {
			if missingRepo(err.Error()) {
				return "", fmt.Errorf("%w: git fetch %s: %v", errUnknownModule, url, err)
			}
			return "", fmt.Errorf("git fetch %s: %w", url, err)
		}
		commit, err = git("rev-parse", "--verify", "--quiet", ref+"^{commit}")
		if err != nil || commit == "" {
			return "", fmt.Errorf("%w %s in %s: %v", errUnknownRef, ref, url, ferr)
		}
	}
	if err != nil {
		return "", fmt.Errorf("git rev-parse: %w", err)
	}
	// Export the tree without .git: the module directory is what puppet
	// compiles, not a working copy.
	cmd := exec.CommandContext(ctx, "git", "-C", repo, "archive", "--format=tar", commit)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	if err := untar(stdout, dest); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return "", fmt.Errorf("unpacking %s: %w", commit, err)
	}
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("git archive: %s", strings.TrimSpace(errOut.String()))
	}
	return commit, nil
}

// installModule makes release the module at <modulepath>/<module> in one
// atomic step. The module path is a symlink to the release; replacing a
// symlink with rename(2) is atomic, so a compile that starts mid-install sees
// the old module or the new one, never half of either. A module directory
// installed by hand is swapped out with renameat2(RENAME_EXCHANGE), atomic
// too, and kept among the releases.
func installModule(modulepath, module, release, oldDir string) error {
	target := filepath.Join(modulepath, module)
	// The temporary link is named after the release, so two installs can
	// never take each other's link.
	tmp := filepath.Join(modulepath, "."+module+"."+filepath.Base(release)+".serfdeploy-new")
	os.Remove(tmp)
	if err := os.Symlink(release, tmp); err != nil {
		return err
	}
	info, err := os.Lstat(target)
	switch {
	case err == nil && info.Mode()&os.ModeSymlink == 0:
		if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, target, unix.RENAME_EXCHANGE); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("swapping %s: %w", target, err)
		}
		// tmp now holds the old directory: keep it with the releases.
		if err := os.Rename(tmp, oldDir); err != nil {
			return fmt.Errorf("keeping the old %s: %w", target, err)
		}
		return nil
	case err == nil || errors.Is(err, os.ErrNotExist):
		if err := os.Rename(tmp, target); err != nil {
			os.Remove(tmp)
			return err
		}
		return nil
	default:
		os.Remove(tmp)
		return err
	}
}

// pruneReleases keeps the newest keep releases of a module, and whatever the
// module path points at now.
func pruneReleases(dir string, keep int, inUse string) {
	pruneOldest(dir, keep, filepath.Base(inUse))
}
