package nodesetup

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// DropIn is scripts/systemd/serf.service.d/serfdeploy.conf (a test keeps
// the two the same). It adds to Debian's serf unit
// (/lib/systemd/system/serf.service) instead of replacing it, so the
// unit's own settings stay, KillSignal=SIGINT (serf leaves the cluster
// gracefully on stop) first of all.
const DropIn = `# serfdeploy's additions to Debian's serf unit, /lib/systemd/system/serf.service
# (serf agent -config-dir=/etc/serf/, KillSignal=SIGINT so that serf leaves
# the cluster gracefully, Restart=always): all of it is kept. serfdeploy's
# event handler is registered in /etc/serf/serf.json, not here.
# Written by ` + "`serfdeploy install --systemd`" + `; see scripts/install.sh.
[Service]
# Puppet's own packages (apt.puppet.com) put puppet in /opt/puppetlabs/bin,
# which is not on systemd's default PATH; Debian's puppet-agent puts it in
# /usr/bin. With this PATH the handler finds either.
Environment=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/puppetlabs/bin
# Puppet runs and code syncs are detached workers in their own sessions.
# KillMode=process stops only serf on a restart or stop, so restarting the
# agent never kills a Puppet run half way.
KillMode=process
`

// oldUnitMark is in the full unit older installs put in
// /etc/systemd/system/serf.service: it ran serfdeploy as the handler from
// its command line, and would now register it a second time.
var oldUnitMark = []byte("serfdeploy handle")

// writeSystemd writes the drop-in, removes an old serfdeploy unit that
// overrides Debian's, and reloads systemd when either changed and systemd
// runs this machine (never under a test root).
func writeSystemd(r *Result, o *Options, p Paths) error {
	before := len(r.Changes)
	if err := ensureDir(r, filepath.Dir(p.DropIn)); err != nil {
		return err
	}
	old, _, err := readIfExists(p.DropIn)
	if err != nil {
		return err
	}
	if old != nil && !bytes.Equal(old, []byte(DropIn)) {
		r.change(p.DropIn, "replaced with this version's")
	}
	if err := writeFile(r, p.DropIn, []byte(DropIn), modePublic); err != nil {
		return err
	}
	if b, _, _ := readIfExists(p.OldUnit); bytes.Contains(b, oldUnitMark) {
		if err := os.Remove(p.OldUnit); err != nil {
			return fmt.Errorf("removing the old unit: %w", err)
		}
		r.change(p.OldUnit, "removed (serfdeploy's old full unit; Debian's unit and the drop-in replace it)")
	}
	if len(r.Changes) == before || o.Root != "/" || !systemdRuns() {
		return nil
	}
	if out, err := exec.Command("systemctl", "daemon-reload").CombinedOutput(); err != nil {
		return fmt.Errorf("systemctl daemon-reload: %w: %s", err, bytes.TrimSpace(out))
	}
	r.Changes = append(r.Changes, "systemctl daemon-reload")
	return nil
}

// oldUnitWarning warns, without --systemd, of an old unit that would run
// the handler twice.
func oldUnitWarning(r *Result, p Paths) {
	if b, _, _ := readIfExists(p.OldUnit); bytes.Contains(b, oldUnitMark) {
		r.warn("%s is serfdeploy's old full unit: it registers the handler on serf's command line as well, so every event would be handled twice; run install with --systemd (it removes it) or remove it", p.OldUnit)
	}
}

// systemdRuns is sd_booted(3): systemd is PID 1.
func systemdRuns() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}
