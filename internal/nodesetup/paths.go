package nodesetup

import "path/filepath"

// Paths are the files and directories install manages, under a root.
type Paths struct {
	SerfDir     string // serf's -config-dir (Debian's unit: /etc/serf)
	SerfJSON    string
	Keyring     string // not *.json: serf reads every *.json in SerfDir as config
	NodeDir     string
	NodeYAML    string
	StateDir    string
	HandlersDir string
	DropIn      string // systemd drop-in for Debian's serf.service
	OldUnit     string // the full unit older installs wrote over Debian's
}

// PathsUnder returns the paths under root ("/" on a node).
func PathsUnder(root string) Paths {
	j := func(p string) string { return filepath.Join(root, p) }
	return Paths{
		SerfDir:     j("etc/serf"),
		SerfJSON:    j("etc/serf/serf.json"),
		Keyring:     j("etc/serf/serf.keyring"),
		NodeDir:     j("etc/serfdeploy"),
		NodeYAML:    j("etc/serfdeploy/node.yaml"),
		StateDir:    j("var/lib/serfdeploy"),
		HandlersDir: j("etc/serf/handlers"),
		DropIn:      j("etc/systemd/system/serf.service.d/serfdeploy.conf"),
		OldUnit:     j("etc/systemd/system/serf.service"),
	}
}
