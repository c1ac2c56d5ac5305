package nodesetup

import (
	"os"
	"strings"
)

// Install converges the node's files on the options (Validate first). It
// stops at the first error; the files written before it are whole, each
// replaced atomically.
func Install(o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	p := PathsUnder(o.Root)
	r := &Result{}
	for _, d := range []string{p.SerfDir, p.HandlersDir, p.NodeDir, p.StateDir} {
		if err := ensureDir(r, d); err != nil {
			return r, err
		}
	}
	role, err := writeNodeYAML(r, &o, p)
	if err != nil {
		return r, err
	}
	if o.EncryptKey != "" {
		if err := writeKeyring(r, p.Keyring, o.EncryptKey); err != nil {
			return r, err
		}
	} else if err := keyringMode(r, p.Keyring); err != nil {
		return r, err
	}
	if err := writeSerfJSON(r, &o, p, role); err != nil {
		return r, err
	}
	if err := encryptionWarning(r, p); err != nil {
		return r, err
	}
	if o.Systemd {
		err = writeSystemd(r, &o, p)
	} else {
		oldUnitWarning(r, p)
	}
	return r, err
}

// encryptionWarning says when gossip is not encrypted: whoever reaches the
// serf port could join and fire deploy and puppetrun.
func encryptionWarning(r *Result, p Paths) error {
	m, err := loadSerfJSON(p.SerfJSON)
	if err != nil {
		return err
	}
	kf, _ := m.str("keyring_file")
	if _, ok := m["encrypt_key"]; ok || kf != "" {
		return nil
	}
	if _, err := os.Stat(p.Keyring); err == nil {
		r.warn("%s exists but %s has no keyring_file: gossip is NOT encrypted; run install with --encrypt-key KEY", p.Keyring, p.SerfJSON)
		return nil
	}
	r.warn("serf gossip is NOT encrypted: any host that reaches this node's serf port (7946) can join the cluster and fire deploy and puppetrun; install with --encrypt-key KEY (the same key on every node, made once with: serf keygen), see docs/security.md")
	return nil
}

// Summary is the text install prints: the changes, or that nothing
// changed.
func (r *Result) Summary() string {
	if len(r.Changes) == 0 {
		return "nothing changed\n"
	}
	return strings.Join(r.Changes, "\n") + "\n"
}
