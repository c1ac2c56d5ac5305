package nodesetup

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/serfdeploy/serfdeploy/handler"
)

const (
	testKey1 = "cg8StVXbQJ0gPvMd9o7yrg==" // serf keygen
	testKey2 = "4zPVRXL9DbJX3J2b8H7X3l8x7fZ2m0n1o2p3q4r5s6U="
	// evilTag is what made the old script's serf.json register a handler
	// of the attacker's choosing.
	evilTag = `a"},"event_handlers":["/tmp/evil.sh"],"tags":{"y":"z`
)

// withUmask runs f under umask m: the files' modes must not depend on it.
// The umask is the process's, so tests that use it do not run in parallel.
func withUmask(m int, f func()) {
	old := syscall.Umask(m)
	defer syscall.Umask(old)
	f()
}

func install(t *testing.T, o Options) *Result {
	t.Helper()
	r, err := Install(o)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	return r
}

func readSerfJSON(t *testing.T, p Paths) map[string]any {
	t.Helper()
	b, err := os.ReadFile(p.SerfJSON)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("serf.json does not parse: %v\n%s", err, b)
	}
	return m
}

func serfTags(t *testing.T, p Paths) map[string]string {
	t.Helper()
	var c struct {
		Tags map[string]string `json:"tags"`
	}
	b, _ := os.ReadFile(p.SerfJSON)
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.Tags
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// TestInstallTwiceConverges: two installs in a row in one root, the first
// with hostile values under umask 000, the second with other flags. The
// files parse (serf.json with encoding/json, node.yaml with the handler's
// own loader), keys are 0600 and the rest 0644, the second run's flags win,
// what it did not give is kept, it reports exactly what changed, and no
// secret is in any output. The old install.sh kept role and tags on a
// re-run, split "web ops", wrote invalid files for a quoted key, and made
// them 0666 under umask 000.
func TestInstallTwiceConverges(t *testing.T) {
	root := t.TempDir()
	p := PathsUnder(root)
	rpc1, rpc2 := `k"e\y 1`, `second\"key`
	var r1 *Result
	withUmask(0, func() {
		r1 = install(t, Options{
			Root: root, Binary: "/usr/local/bin/serfdeploy", NodeName: "node-1",
			Role: "agent", RPCAuth: rpc1, EncryptKey: testKey1, Join: []string{"10.0.0.1"},
			Tags:    map[string]string{"segment": "qa", "team": "web ops", "quote": `a"b\c`, "x": evilTag},
			Systemd: true,
		})
	})
	for _, f := range []string{p.SerfJSON, p.Keyring, p.NodeYAML} {
		if m := mode(t, f); m != 0o600 {
			t.Errorf("%s: mode %04o, want 0600 (it holds a key)", f, m)
		}
	}
	for _, f := range []string{p.DropIn} {
		if m := mode(t, f); m != 0o644 {
			t.Errorf("%s: mode %04o, want 0644", f, m)
		}
	}
	for _, d := range []string{p.SerfDir, p.NodeDir, p.StateDir, p.HandlersDir} {
		if m := mode(t, d); m != 0o755 {
			t.Errorf("%s: mode %04o, want 0755", d, m)
		}
	}
	sj := readSerfJSON(t, p)
	if sj["rpc_auth"] != rpc1 || sj["node_name"] != "node-1" {
		t.Errorf("serf.json: %v", sj)
	}
	want1 := map[string]string{"fqdn": "node-1", "segment": "qa", "team": "web ops", "quote": `a"b\c`, "x": evilTag}
	if got := serfTags(t, p); !reflect.DeepEqual(got, want1) {
		t.Errorf("tags %v, want %v", got, want1)
	}
	cfg, err := handler.LoadConfig(p.NodeYAML)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Role != "agent" || cfg.Serf.RPCAuth != rpc1 {
		t.Errorf("node.yaml: role %q rpc_auth ok=%v", cfg.Role, cfg.Serf.RPCAuth == rpc1)
	}

	r2 := install(t, Options{
		Root: root, Binary: "/usr/local/bin/serfdeploy",
		Role: "master", RPCAuth: rpc2, Tags: map[string]string{"segment": "prod"},
		LogURL: "http://loki:3100", GitURL: "https://git.example.com/puppet/{module}.git",
		Modules: map[string]string{"motd": "/srv/git/motd.git"},
	})
	wantTags := map[string]string{"fqdn": "node-1", "segment": "prod", "team": "web ops", "quote": `a"b\c`, "x": evilTag, "role": "puppetmaster"}
	if got := serfTags(t, p); !reflect.DeepEqual(got, wantTags) {
		t.Errorf("tags after the second run %v, want %v", got, wantTags)
	}
	sj = readSerfJSON(t, p)
	if sj["rpc_auth"] != rpc2 || !reflect.DeepEqual(sj["retry_join"], []any{"10.0.0.1"}) || sj["keyring_file"] != p.Keyring {
		t.Errorf("serf.json after the second run: join %v keyring %v rpc ok=%v", sj["retry_join"], sj["keyring_file"], sj["rpc_auth"] == rpc2)
	}
	cfg, err = handler.LoadConfig(p.NodeYAML)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Role != "master" || cfg.Serf.RPCAuth != rpc2 || cfg.Logging.URL != "http://loki:3100" ||
		cfg.Master.GitURL != "https://git.example.com/puppet/{module}.git" || cfg.Master.Modules["motd"] != "/srv/git/motd.git" {
		t.Errorf("node.yaml after the second run: %+v", cfg)
	}
	wantChanges := []string{
		p.NodeYAML + `: role: "agent" -> "master"`,
		p.NodeYAML + `: serf.rpc_auth: (changed)`,
		p.NodeYAML + `: logging.url: (none) -> "http://loki:3100"`,
		p.NodeYAML + `: master.git_url: (none) -> "https://git.example.com/puppet/{module}.git"`,
		p.NodeYAML + `: master.modules.motd: (none) -> "/srv/git/motd.git"`,
		p.SerfJSON + `: tag role: (none) -> "puppetmaster"`,
		p.SerfJSON + `: tag segment: "qa" -> "prod"`,
		p.SerfJSON + `: rpc_auth: (changed)`,
	}
	if !slices.Equal(r2.Changes, wantChanges) {
		t.Errorf("second run's changes:\n%s\nwant:\n%s", strings.Join(r2.Changes, "\n"), strings.Join(wantChanges, "\n"))
	}
	for _, r := range []*Result{r1, r2} {
		out := r.Summary() + strings.Join(r.Warnings, "\n")
		for _, secret := range []string{rpc1, rpc2, testKey1} {
			if strings.Contains(out, secret) {
				t.Errorf("output shows a secret:\n%s", out)
			}
		}
	}
	// A third run with nothing new changes nothing, and says so.
	if r := install(t, Options{Root: root, Binary: "/usr/local/bin/serfdeploy", Role: "master"}); r.Summary() != "nothing changed\n" {
		t.Errorf("third run: %q", r.Summary())
	}
}

// TestTagCannotSetOtherSettings: a tag value written to break out of its
// JSON string (the old script pasted it into the text) stays a tag value,
// and serf.json's event handler is serfdeploy's filtered registration only.
func TestTagCannotSetOtherSettings(t *testing.T) {
	root := t.TempDir()
	p := PathsUnder(root)
	install(t, Options{Root: root, Binary: "/usr/local/bin/serfdeploy", NodeName: "n", Tags: map[string]string{"x": evilTag}})
	sj := readSerfJSON(t, p)
	keys := []string{}
	for k := range sj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"event_handlers", "node_name", "tags"}; !slices.Equal(keys, want) {
		t.Fatalf("serf.json settings %v, want %v", keys, want)
	}
	want := []any{"user:deploy,query:puppetrun,query:puppet-status,query:puppet-disable,query:puppet-enable=/usr/local/bin/serfdeploy handle --config " + p.NodeYAML}
	if !reflect.DeepEqual(sj["event_handlers"], want) {
		t.Fatalf("event_handlers %v, want %v", sj["event_handlers"], want)
	}
	if serfTags(t, p)["x"] != evilTag {
		t.Fatalf("tags %v", serfTags(t, p))
	}
}

// TestHostileInputRefused: what serf or the handler cannot take is
// refused before any file is written, and a refused key is never echoed.
func TestHostileInputRefused(t *testing.T) {
	for name, o := range map[string]Options{
		"newline in a tag value": {Tags: map[string]string{"team": "web\nops"}},
		"newline in a tag key":   {Tags: map[string]string{"te\nam": "web"}},
		"space in a tag key":     {Tags: map[string]string{"te am": "web"}},
		"quote in a tag key":     {Tags: map[string]string{`a"b`: "web"}},
		"role as a tag":          {Tags: map[string]string{"role": "puppetmaster"}},
		"tags over serf's limit": {Tags: map[string]string{"big": strings.Repeat("v", 520)}},
		"newline in the rpc key": {RPCAuth: "secret-rpc\nkey"},
		"bad encrypt key":        {EncryptKey: "bm90LWEta2V5"},
		"bad role":               {Role: "boss"},
		"bad module":             {Modules: map[string]string{"../x": "/srv/git/x.git"}},
		"log url not http":       {LogURL: "file:///etc/passwd"},
		"shell in the binary":    {Binary: "/usr/bin/serfdeploy; rm -rf /"},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			o.Root, o.NodeName = root, "n"
			_, err := Install(o)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), "secret-rpc") || strings.Contains(err.Error(), "bm90LWEta2V5") {
				t.Fatalf("the error shows the key: %v", err)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Fatalf("files written: %v", entries)
			}
		})
	}
}

// TestRerunFixesModesAndKeepsOtherSettings: files an older install left
// world-writable (the old script under umask 000) are made 0600/0644 and
// the change is reported; settings install does not manage, and comments,
// are kept.
func TestRerunFixesModesAndKeepsOtherSettings(t *testing.T) {
	root := t.TempDir()
	p := PathsUnder(root)
	for _, d := range []string{p.SerfDir, p.NodeDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o666); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	write(p.SerfJSON, `{"node_name": "old", "start_join": ["10.0.0.9"], "rpc_auth": "old-rpc", "log_level": "warn", "tags": {"fqdn": "old", "segment": "qa"}}`)
	write(p.NodeYAML, "# operator's note\nrole: agent\nenvironment: staging # ours\nserf:\n  rpc_auth: old-rpc\n")
	write(p.Keyring, `["`+testKey1+`"]`)

	r := install(t, Options{Root: root, Binary: "/usr/local/bin/serfdeploy", Join: []string{"10.0.0.1", "10.0.0.2"}})
	for _, f := range []string{p.SerfJSON, p.NodeYAML, p.Keyring} {
		if m := mode(t, f); m != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", f, m)
		}
		if !slices.Contains(r.Changes, f+": mode 0666 -> 0600") {
			t.Errorf("no mode change reported for %s:\n%s", f, r.Summary())
		}
	}
	sj := readSerfJSON(t, p)
	if sj["log_level"] != "warn" || sj["node_name"] != "old" || sj["start_join"] != nil ||
		!reflect.DeepEqual(sj["retry_join"], []any{"10.0.0.1", "10.0.0.2"}) {
		t.Errorf("serf.json: %v", sj)
	}
	b, _ := os.ReadFile(p.NodeYAML)
	if !strings.Contains(string(b), "# operator's note") || !strings.Contains(string(b), "# ours") {
		t.Errorf("node.yaml lost its comments:\n%s", b)
	}
	cfg, err := handler.LoadConfig(p.NodeYAML)
	if err != nil || cfg.Environment != "staging" || cfg.Serf.RPCAuth != "old-rpc" {
		t.Errorf("node.yaml: %v %+v", err, cfg)
	}

	// Without a key anywhere the files are 0644.
	plain := t.TempDir()
	pp := PathsUnder(plain)
	withUmask(0o077, func() { install(t, Options{Root: plain, Binary: "/usr/local/bin/serfdeploy", NodeName: "n"}) })
	for _, f := range []string{pp.SerfJSON, pp.NodeYAML} {
		if m := mode(t, f); m != 0o644 {
			t.Errorf("%s: mode %04o, want 0644 (no secret in it)", f, m)
		}
	}
}

// TestBrokenFileIsNotClobbered: a serf.json the old script broke (an RPC
// key with a quote pasted into it) is refused, named, and left as it was.
func TestBrokenFileIsNotClobbered(t *testing.T) {
	root := t.TempDir()
	p := PathsUnder(root)
	if err := os.MkdirAll(p.SerfDir, 0o755); err != nil {
		t.Fatal(err)
	}
	broken := "{\n  \"node_name\": \"n\",\n  \"rpc_auth\": \"a\"b\",\n  \"tags\": {}\n}\n"
	if err := os.WriteFile(p.SerfJSON, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Install(Options{Root: root, Binary: "/usr/local/bin/serfdeploy", RPCAuth: "new"})
	if err == nil || !strings.Contains(err.Error(), p.SerfJSON) {
		t.Fatalf("err %v, want one naming %s", err, p.SerfJSON)
	}
	if b, _ := os.ReadFile(p.SerfJSON); string(b) != broken {
		t.Fatalf("serf.json changed:\n%s", b)
	}
}

// TestEncryptKeyBecomesPrimary: --encrypt-key makes the key the keyring's
// first (serf encrypts with it) and keeps the others; the same key again
// changes nothing. The old script kept the old keyring with a warning.
func TestEncryptKeyBecomesPrimary(t *testing.T) {
	root := t.TempDir()
	p := PathsUnder(root)
	install(t, Options{Root: root, Binary: "/usr/local/bin/serfdeploy", NodeName: "n", EncryptKey: testKey1})
	r := install(t, Options{Root: root, Binary: "/usr/local/bin/serfdeploy", EncryptKey: testKey2})
	var keys []string
	b, _ := os.ReadFile(p.Keyring)
	if err := json.Unmarshal(b, &keys); err != nil || !slices.Equal(keys, []string{testKey2, testKey1}) {
		t.Fatalf("keyring %s (%v), want the new key first, the old kept", b, err)
	}
	if want := []string{p.Keyring + ": primary key: (changed)"}; !slices.Equal(r.Changes, want) {
		t.Fatalf("changes %q, want %q", r.Changes, want)
	}
	if r := install(t, Options{Root: root, Binary: "/usr/local/bin/serfdeploy", EncryptKey: testKey2}); len(r.Changes) != 0 {
		t.Fatalf("same key again: %q", r.Changes)
	}
}

// TestDropIn: the drop-in install writes is the one in scripts/systemd,
// adds the PATH to Puppet's own packages and KillMode=process without
// touching Debian's KillSignal=SIGINT, and replaces the old full unit,
// which also registered the handler.
func TestDropIn(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "scripts", "systemd", "serf.service.d", "serfdeploy.conf"))
	if err != nil || string(b) != DropIn {
		t.Fatalf("scripts/systemd/serf.service.d/serfdeploy.conf differs from nodesetup.DropIn (%v)", err)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "scripts", "systemd", "serf.service")); err == nil {
		t.Fatal("scripts/systemd/serf.service still replaces Debian's unit")
	}
	settings := map[string]string{}
	for _, l := range strings.Split(DropIn, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			settings[k] = v
		}
	}
	if settings["KillMode"] != "process" || !strings.Contains(settings["Environment"], ":/opt/puppetlabs/bin") ||
		settings["ExecStart"] != "" || settings["KillSignal"] != "" {
		t.Fatalf("drop-in settings %v", settings)
	}

	root := t.TempDir()
	p := PathsUnder(root)
	if err := os.MkdirAll(filepath.Dir(p.OldUnit), 0o755); err != nil {
		t.Fatal(err)
	}
	old := "[Service]\nExecStart=/usr/bin/serf agent -config-dir=/etc/serf -event-handler \"/usr/local/bin/serfdeploy handle --config /etc/serfdeploy/node.yaml\"\n"
	if err := os.WriteFile(p.OldUnit, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	r := install(t, Options{Root: root, Binary: "/usr/local/bin/serfdeploy", NodeName: "n"})
	if !strings.Contains(strings.Join(r.Warnings, "\n"), "handled twice") {
		t.Fatalf("no warning about the old unit: %q", r.Warnings)
	}
	r = install(t, Options{Root: root, Binary: "/usr/local/bin/serfdeploy", Systemd: true})
	if _, err := os.Stat(p.OldUnit); err == nil {
		t.Fatal("the old unit is still there")
	}
	if !slices.Contains(r.Changes, p.OldUnit+": removed (serfdeploy's old full unit; Debian's unit and the drop-in replace it)") {
		t.Fatalf("changes %q", r.Changes)
	}
}

// TestWarnsWhatIsMissing: a master with nowhere to fetch code from and a
// node without Loki are named, so they are not found out on the first
// deploy.
func TestWarnsWhatIsMissing(t *testing.T) {
	root := t.TempDir()
	r := install(t, Options{Root: root, Binary: "/usr/local/bin/serfdeploy", NodeName: "n", Role: "master"})
	w := strings.Join(r.Warnings, "\n")
	for _, want := range []string{"--git-url", "--log-url", "NOT encrypted"} {
		if !strings.Contains(w, want) {
			t.Errorf("no warning with %q:\n%s", want, w)
		}
	}
	r = install(t, Options{Root: root, Binary: "/usr/local/bin/serfdeploy", GitURL: "https://git/{module}.git", LogURL: "http://loki:3100", EncryptKey: testKey1})
	if len(r.Warnings) != 0 {
		t.Errorf("warnings left: %q", r.Warnings)
	}
}
