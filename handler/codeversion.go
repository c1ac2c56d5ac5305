package handler

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/serfdeploy/serfdeploy/internal/atomicfile"
)

// commitFile, in each installed module, holds the commit it came from.
// serfdeploy creates it in the release with O_EXCL after the unpack, and
// refuses a module tree that carries the name (confine.go): a link of that
// name would have the root-owned handler write, or the config_version
// script read, wherever it points.
const commitFile = ".serfdeploy-commit"

// configVersionScript is what Puppet runs as the environment's
// config_version: it prints "module=commit" for every module serfdeploy
// installed (protocol.FormatCodeVersion's form). Puppet stores it in each
// run's summary, so a run says which code it applied and a run that applied
// another deploy's code is reported stale.
const configVersionScript = `#!/bin/sh
# Written by serfdeploy: the commit of every module it installed here.
for f in %s/*/%s; do
	# Only the regular file serfdeploy wrote: never read through a link.
	[ -f "$f" ] && [ ! -L "$f" ] || continue
	m=${f%%/%s}
	printf '%%s=%%s ' "${m##*/}" "$(cat "$f")"
done
echo
`

// ensureConfigVersion installs the script under envDir/.serfdeploy and
// names it in environment.conf, unless the operator set a config_version
// of their own (then runs do not report their code, and stale runs go
// unseen: logged by the caller).
func (n *Node) ensureConfigVersion(envDir, modulepath string) error {
	script := filepath.Join(envDir, ".serfdeploy", "config_version")
	body := fmt.Sprintf(configVersionScript, shellQuote(modulepath), commitFile, commitFile)
	if old, err := os.ReadFile(script); err != nil || string(old) != body {
		if err := os.MkdirAll(filepath.Dir(script), 0o755); err != nil {
			return err
		}
		// Puppet's server (another user) runs it.
		if err := atomicfile.Write(script, []byte(body), 0o755); err != nil {
			return err
		}
	}
	conf := filepath.Join(envDir, "environment.conf")
	b, err := os.ReadFile(conf)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == "config_version" {
			if strings.TrimSpace(v) != ".serfdeploy/config_version" {
				return fmt.Errorf("%s sets its own config_version", conf)
			}
			return nil
		}
	}
	if len(b) > 0 && !bytes.HasSuffix(b, []byte("\n")) {
		b = append(b, '\n')
	}
	b = append(b, "# serfdeploy: runs report the module commits they applied\nconfig_version = .serfdeploy/config_version\n"...)
	return atomicfile.Write(conf, b, 0o644) // read by Puppet's server
}

// shellQuote quotes s as one word for POSIX sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// lockFile takes an exclusive flock on path, waiting for it until ctx
// ends; waited says whether another holder made it wait.
func lockFile(ctx context.Context, path string) (unlock func(), waited bool, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, waited, nil
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, waited, err
		}
		waited = true
		select {
		case <-ctx.Done():
			f.Close()
			return nil, waited, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
