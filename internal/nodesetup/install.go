package nodesetup

import (
	"os"
	"strings"
)

// Install converges the node's files on the options. Every file is
// worked out first, so that input refused on the way (tags that would
// not fit serf's limit with those already there, a file that does not
// parse) leaves them all as they were; then each is replaced atomically.
// The result is nil on an error before anything was written.
func Install(o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, &InputError{err}
	}
	p := PathsUnder(o.Root)
	r := &Result{}
	role, nodeYAML, err := planNodeYAML(r, &o, p)
	if err != nil {
		return nil, err
	}
	files := []*pending{nodeYAML}
	if o.EncryptKey != "" {
		keyring, err := planKeyring(r, p.Keyring, o.EncryptKey)
		if err != nil {
			return nil, err
		}
		files = append(files, keyring)
	}
	serfJSON, err := planSerfJSON(r, &o, p, role)
	if err != nil {
		return nil, err
	}
	files = append(files, serfJSON)

	for _, d := range []string{p.SerfDir, p.HandlersDir, p.NodeDir, p.StateDir} {
		if err := ensureDir(r, d); err != nil {
			return r, err
		}
	}
	for _, f := range files {
		if err := writeFile(r, f.path, f.data, f.mode); err != nil {
			return r, err
		}
	}
	if o.EncryptKey == "" {
		if err := keyringMode(r, p.Keyring); err != nil {
			return r, err
		}
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
