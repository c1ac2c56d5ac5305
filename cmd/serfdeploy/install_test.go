package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/handler"
	"github.com/serfdeploy/serfdeploy/internal/nodesetup"
	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/serfcluster"
)

// topLevelTag closed the old script's tags object and registered an event
// handler of its own: serf.json was pasted together from text.
const topLevelTag = `a"},"event_handlers":["/tmp/evil.sh"],"tags":{"y":"z`

type installRun struct {
	code           int
	stdout, stderr string
}

// runUnderUmask000 runs a command the way a root shell with umask 000
// would: the modes of what it writes must not depend on the umask.
func runUnderUmask000(t *testing.T, env []string, name string, args ...string) installRun {
	t.Helper()
	cmd := exec.Command("sh", append([]string{"-c", `umask 000; exec "$@"`, "sh", name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := installRun{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestInstallCommandTwice runs the built `serfdeploy install` twice under
// umask 000 in a temporary root: hostile tags and keys are written whole
// and parse, files holding a key are 0600 and the rest 0644, the second
// run's flags win and the others are kept, each run prints what it
// changed, and no key is ever printed. The old install.sh, given the
// same, wrote serf.json and node.yaml that do not parse, a serf.json with
// a top-level event_handlers from a tag, 0666 files, split "web ops", and
// kept role agent and segment=qa on the second run.
func TestInstallCommandTwice(t *testing.T) {
	root := t.TempDir()
	p := nodesetup.PathsUnder(root)
	rpc1, rpc2, key := `rpc "one" \ key`, `rpc\"two`, serfcluster.NewKey(t)
	r := runUnderUmask000(t, nil, bin, "install", "--root", root, "--binary", bin, "--node-name", "node-1",
		"--role", "agent", "--rpc-auth", rpc1, "--encrypt-key", key, "--join", "127.0.0.1:7946",
		"--tag", "segment=qa", "--tag", "team=web ops", "--tag", "list=a,b", "--tag", `x=`+topLevelTag, "--systemd")
	if r.code != 0 {
		t.Fatalf("first install: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, f := range []string{p.SerfJSON, p.Keyring, p.NodeYAML} {
		if m := fileMode(t, f); m != 0o600 {
			t.Errorf("%s: mode %04o under umask 000, want 0600", f, m)
		}
	}
	if m := fileMode(t, p.DropIn); m != 0o644 {
		t.Errorf("drop-in: mode %04o, want 0644", m)
	}
	var sj struct {
		NodeName      string            `json:"node_name"`
		RPCAuth       string            `json:"rpc_auth"`
		KeyringFile   string            `json:"keyring_file"`
		RetryJoin     []string          `json:"retry_join"`
		Tags          map[string]string `json:"tags"`
		EventHandlers []string          `json:"event_handlers"`
	}
	readSJ := func() {
		t.Helper()
		b, err := os.ReadFile(p.SerfJSON)
		if err != nil {
			t.Fatal(err)
		}
		sj.Tags = nil
		if err := json.Unmarshal(b, &sj); err != nil {
			t.Fatalf("serf.json does not parse: %v\n%s", err, b)
		}
	}
	readSJ()
	wantTags := map[string]string{"fqdn": "node-1", "segment": "qa", "team": "web ops", "list": "a,b", "x": topLevelTag}
	if !reflect.DeepEqual(sj.Tags, wantTags) || sj.RPCAuth != rpc1 || sj.KeyringFile != p.Keyring ||
		!slices.Equal(sj.RetryJoin, []string{"127.0.0.1:7946"}) {
		t.Errorf("serf.json: tags %v join %v keyring %q rpc ok=%v", sj.Tags, sj.RetryJoin, sj.KeyringFile, sj.RPCAuth == rpc1)
	}
	wantHandler := protocol.HandlerFilter() + "=" + bin + " handle --config " + p.NodeYAML
	if !slices.Equal(sj.EventHandlers, []string{wantHandler}) {
		t.Errorf("event_handlers %q, want [%q]", sj.EventHandlers, wantHandler)
	}
	cfg, err := handler.LoadConfig(p.NodeYAML)
	if err != nil || cfg.Role != "agent" || cfg.Serf.RPCAuth != rpc1 {
		t.Fatalf("node.yaml: %v role %q", err, cfg.Role)
	}

	r2 := runUnderUmask000(t, nil, bin, "install", "--root", root, "--binary", bin, "--role", "master",
		"--tag", "segment=prod", "--remove-tag", "list", "--rpc-auth", rpc2, "--log-url", "http://loki:3100",
		"--module", "motd=/srv/git/motd.git", "--puppet-command", "/opt/puppetlabs/bin/puppet agent --test --detailed-exitcodes --environment {environment}",
		"--puppet-summary-file", "/opt/puppetlabs/puppet/public/last_run_summary.yaml", "--puppet-state-dir", "/opt/puppetlabs/puppet/cache/state")
	if r2.code != 0 {
		t.Fatalf("second install: exit %d\n%s%s", r2.code, r2.stdout, r2.stderr)
	}
	readSJ()
	wantTags = map[string]string{"fqdn": "node-1", "segment": "prod", "team": "web ops", "x": topLevelTag, "role": "puppetmaster"}
	if !reflect.DeepEqual(sj.Tags, wantTags) || sj.RPCAuth != rpc2 || !slices.Equal(sj.RetryJoin, []string{"127.0.0.1:7946"}) {
		t.Errorf("serf.json after the second run: tags %v join %v rpc ok=%v", sj.Tags, sj.RetryJoin, sj.RPCAuth == rpc2)
	}
	cfg, err = handler.LoadConfig(p.NodeYAML)
	if err != nil || cfg.Role != "master" || cfg.Serf.RPCAuth != rpc2 || cfg.Logging.URL != "http://loki:3100" ||
		cfg.Master.Modules["motd"] != "/srv/git/motd.git" || cfg.Puppet.Command[0] != "/opt/puppetlabs/bin/puppet" ||
		cfg.Puppet.SummaryFile != "/opt/puppetlabs/puppet/public/last_run_summary.yaml" || cfg.Puppet.StateDir != "/opt/puppetlabs/puppet/cache/state" {
		t.Fatalf("node.yaml after the second run: %v %+v", err, cfg)
	}
	want := strings.Join([]string{
		p.NodeYAML + `: role: "agent" -> "master"`,
		p.NodeYAML + `: serf.rpc_auth: (changed)`,
		p.NodeYAML + `: logging.url: (none) -> "http://loki:3100"`,
		p.NodeYAML + `: master.modules.motd: (none) -> "/srv/git/motd.git"`,
		p.NodeYAML + `: puppet.command: (none) -> "/opt/puppetlabs/bin/puppet agent --test --detailed-exitcodes --environment {environment}"`,
		p.NodeYAML + `: puppet.summary_file: (none) -> "/opt/puppetlabs/puppet/public/last_run_summary.yaml"`,
		p.NodeYAML + `: puppet.state_dir: (none) -> "/opt/puppetlabs/puppet/cache/state"`,
		p.SerfJSON + `: tag list: "a,b" -> (none)`,
		p.SerfJSON + `: tag role: (none) -> "puppetmaster"`,
		p.SerfJSON + `: tag segment: "qa" -> "prod"`,
		p.SerfJSON + `: rpc_auth: (changed)`,
	}, "\n") + "\n"
	if r2.stdout != want {
		t.Errorf("second run printed:\n%s\nwant:\n%s", r2.stdout, want)
	}
	for _, m := range []string{p.SerfJSON, p.NodeYAML} {
		if fileMode(t, m) != 0o600 {
			t.Errorf("%s: mode %04o after the second run", m, fileMode(t, m))
		}
	}
	r3 := runUnderUmask000(t, nil, bin, "install", "--root", root, "--binary", bin, "--role", "master", "--systemd")
	if r3.code != 0 || r3.stdout != "nothing changed\n" {
		t.Errorf("third run: exit %d %q %s", r3.code, r3.stdout, r3.stderr)
	}
	for _, out := range []string{r.stdout + r.stderr, r2.stdout + r2.stderr, r3.stdout + r3.stderr} {
		for _, secret := range []string{rpc1, rpc2, key} {
			if strings.Contains(out, secret) {
				t.Fatalf("a key was printed:\n%s", out)
			}
		}
	}

	// Refused input: exit 2, the key not echoed, nothing changed.
	before, _ := os.ReadFile(p.SerfJSON)
	for _, args := range [][]string{
		{"--tag", "team=web\nops"},
		{"--tag", "bad key=x"},
		{"--rpc-auth", "secret-xyz\n"},
		{"--encrypt-key", "secret-xyz"},
		{"--tag", "big=" + strings.Repeat("v", 600)},
	} {
		r := runUnderUmask000(t, nil, bin, append([]string{"install", "--root", root, "--binary", bin}, args...)...)
		if r.code != 2 || strings.Contains(r.stdout+r.stderr, "secret-xyz") {
			t.Errorf("install %q: exit %d, want 2 without the key\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}
	if after, _ := os.ReadFile(p.SerfJSON); string(after) != string(before) {
		t.Error("refused input changed serf.json")
	}
}

// TestInstalledConfigRunsRealAgent: a real serf agent started on the
// config directory install wrote takes it: it starts encrypted with the
// keyring, registers serfdeploy's handler for exactly the filtered events
// (serf info), and the handler answers puppet-status with the node.yaml
// install wrote. A key rotation with serf keys survives a re-run of install
// without --encrypt-key ("nothing changed") and a restart.
func TestInstalledConfigRunsRealAgent(t *testing.T) {
	root := t.TempDir()
	p := nodesetup.PathsUnder(root)
	key, rpcKey := serfcluster.NewKey(t), `rpc"key\`+serfcluster.NewKey(t)[:8]
	r := runUnderUmask000(t, nil, bin, "install", "--root", root, "--binary", bin, "--node-name", "installed",
		"--rpc-auth", rpcKey, "--encrypt-key", key, "--tag", "team=web ops", "--tag", "x="+topLevelTag)
	if r.code != 0 {
		t.Fatalf("install: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	c := serfcluster.Start(t, serfcluster.Options{RPCAuth: rpcKey}, serfcluster.NodeSpec{Name: "installed", ConfigDir: p.SerfDir})
	n := c.Nodes()[0]
	serf := func(args ...string) string {
		t.Helper()
		args = append([]string{args[0], "-rpc-addr", n.RPCAddr, "-rpc-auth", rpcKey}, args[1:]...)
		out, err := exec.Command("serf", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("serf %s: %v: %s", args[0], err, out)
		}
		return string(out)
	}
	var info struct {
		EventHandlers map[string]string `json:"event_handlers"`
		Serf          map[string]string `json:"serf"`
		Tags          map[string]string `json:"tags"`
	}
	if err := json.Unmarshal([]byte(serf("info", "-format", "json")), &info); err != nil {
		t.Fatal(err)
	}
	script := bin + " handle --config " + p.NodeYAML
	want := map[string]string{}
	for _, f := range strings.Split(protocol.HandlerFilter(), ",") {
		want[f] = script
	}
	if !reflect.DeepEqual(info.EventHandlers, want) {
		t.Errorf("the agent's event handlers %v, want %v", info.EventHandlers, want)
	}
	if info.Serf["encrypted"] != "true" || info.Tags["team"] != "web ops" || info.Tags["x"] != topLevelTag {
		t.Errorf("serf info: encrypted %q tags %v", info.Serf["encrypted"], info.Tags)
	}
	var q struct {
		Responses map[string]string `json:"Responses"`
	}
	if err := json.Unmarshal([]byte(serf("query", "-format", "json", "-timeout", "5s", "puppet-status", "{}")), &q); err != nil {
		t.Fatal(err)
	}
	if ans := q.Responses["installed"]; !strings.Contains(ans, `"node":"installed"`) {
		t.Fatalf("puppet-status answered %q, want serfdeploy's answer", q.Responses)
	}

	// Rotation as docs/security.md gives it; install keeps serf's keyring.
	newer := serfcluster.NewKey(t)
	serf("keys", "-install", newer)
	serf("keys", "-use", newer)
	serf("keys", "-remove", key)
	r = runUnderUmask000(t, nil, bin, "install", "--root", root, "--binary", bin)
	if r.code != 0 || r.stdout != "nothing changed\n" {
		t.Fatalf("install after the rotation: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	if fileMode(t, p.Keyring) != 0o600 {
		t.Fatalf("keyring mode %04o", fileMode(t, p.Keyring))
	}
	n.Stop()
	c = serfcluster.Start(t, serfcluster.Options{RPCAuth: rpcKey}, serfcluster.NodeSpec{Name: "installed", ConfigDir: p.SerfDir})
	n = c.Nodes()[0]
	if out := serf("keys", "-list"); !strings.Contains(out, newer+"  [1/1]") || strings.Contains(out, key) {
		t.Fatalf("serf keys -list after a restart:\n%s", out)
	}
}

// TestInstallScript: scripts/install.sh installs the given binary and
// passes every argument whole to `serfdeploy install --systemd`, whose
// exit code it keeps. The old script split "web ops" into two tags.
func TestInstallScript(t *testing.T) {
	root := t.TempDir()
	p := nodesetup.PathsUnder(root)
	script := filepath.Join("..", "..", "scripts", "install.sh")
	env := []string{"SERFDEPLOY_INSTALL_ROOT=" + root}
	r := runUnderUmask000(t, env, "sh", script, "--binary-from", bin, "--node-name", "n", "--tag", "team=web ops")
	if r.code != 0 {
		t.Fatalf("install.sh: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	installed := filepath.Join(root, "usr", "local", "bin", "serfdeploy")
	if fileMode(t, installed) != 0o755 || fileMode(t, p.DropIn) != 0o644 || fileMode(t, p.SerfJSON) != 0o644 {
		t.Fatalf("modes: binary %04o drop-in %04o serf.json %04o", fileMode(t, installed), fileMode(t, p.DropIn), fileMode(t, p.SerfJSON))
	}
	b, _ := os.ReadFile(p.SerfJSON)
	var sj struct {
		Tags          map[string]string `json:"tags"`
		EventHandlers []string          `json:"event_handlers"`
	}
	if err := json.Unmarshal(b, &sj); err != nil || sj.Tags["team"] != "web ops" ||
		!slices.Equal(sj.EventHandlers, []string{nodesetup.HandlerRegistration(installed, p.NodeYAML)}) {
		t.Fatalf("serf.json (%v):\n%s", err, b)
	}
	if !strings.Contains(r.stdout, p.SerfJSON+`: tag team: (none) -> "web ops"`) {
		t.Fatalf("install.sh printed:\n%s", r.stdout)
	}
	r = runUnderUmask000(t, env, "sh", script, "--binary-from", bin, "--tag", "bad key=x")
	if r.code != 2 {
		t.Fatalf("install.sh with a bad tag: exit %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
	}
}
