package handler

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/puppet"
)

// selectNode is an agent whose facts come from factsCommand and whose
// Puppet statedir (classes.txt) is puppetState. Its facts worker runs in
// the test's process, to the end, when the handler starts it; *started
// counts the starts.
func selectNode(t *testing.T, factsCommand []string, puppetState string, extra string, started *int) *Node {
	t.Helper()
	dir := t.TempDir()
	var cmd strings.Builder
	for _, a := range factsCommand {
		fmt.Fprintf(&cmd, "    - %q\n", a)
	}
	cfg := "role: agent\nstate_dir: " + filepath.Join(dir, "state") + "\npuppet:\n  state_dir: " + puppetState +
		"\n  summary_file: " + filepath.Join(dir, "summary.yaml") + "\n  facts_command:\n" + cmd.String() + extra
	cfgPath := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SERF_SELF_NAME": "agent-01", "SERF_TAG_SEGMENT": "qa"}
	n, err := NewNode(c, cfgPath, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	n.worker = func(kind, id string) (int, error) {
		if kind != WorkFacts {
			t.Fatalf("worker %s started", kind)
		}
		*started++
		return os.Getpid(), n.workFacts(context.Background())
	}
	return n
}

func askSelect(t *testing.T, n *Node, sel string) protocol.Status {
	t.Helper()
	b, _ := json.Marshal(protocol.StatusRequest{Select: sel})
	st := askStatus(t, n, string(b))
	if st.Node != n.name || st.V != protocol.Version {
		t.Fatalf("answer %+v", st)
	}
	return st
}

func TestFactValuesOfPuppet7(t *testing.T) {
	b, err := os.ReadFile("testdata/facts_puppet7.json") // `puppet facts show --render-as json`, Puppet 7.23, trimmed
	if err != nil {
		t.Fatal(err)
	}
	facts, err := decodeFacts(b)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"os.family":            "Debian",
		"os.release.major":     "12",
		"os.distro.codename":   "bookworm",
		"os.selinux.enabled":   "false",
		"processors.count":     "2",
		"processors.models.0":  "Intel(R) Xeon(R) Processor",
		"processors.models":    `["Intel(R) Xeon(R) Processor","Intel(R) Xeon(R) Processor"]`,
		"load_averages.1m":     "1.68", // numbers as Puppet wrote them
		"augeas":               `{"version":"1.14.0"}`,
		"role":                 "web", // an external fact ($vardir/facts.d/role.yaml)
		"missing":              "-",
		"os.missing":           "-",
		"os.family.x":          "-",
		"processors.models.2":  "-",
		"processors.models.01": "-",
		"processors.models.-1": "-",
	} {
		got, ok := factValue(facts, name)
		if !ok {
			got = "-"
		}
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	dotted := map[string]any{"my.fact": "x", "my": map[string]any{"other": "y"}, "n": nil}
	for name, want := range map[string]string{"my.fact": "x", "my.other": "y", "n": "-"} {
		if got, ok := factValue(dotted, name); !ok && want != "-" || ok && got != want {
			t.Errorf("%s = %q %v, want %q", name, got, ok, want)
		}
	}
	for _, bad := range []string{`[]`, `null`, `"x"`, `{"a":1} {}`, `{"a":`} {
		if _, err := decodeFacts([]byte(bad)); err == nil {
			t.Errorf("%s decoded as facts", bad)
		}
	}
}

func TestReadClassesOfPuppet7(t *testing.T) {
	// What `puppet apply --write_catalog_summary` of "class ntp {} class
	// profile::web { include ntp } node default { include profile::web }"
	// wrote: Puppet lists its settings class and the node definition too.
	classes, err := readClasses("testdata/classes_puppet7.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"settings", "default", "profile::web", "ntp"} {
		if !classes[c] {
			t.Errorf("%s missing from %v", c, classes)
		}
	}
	if len(classes) != 4 {
		t.Errorf("%v", classes)
	}
	if _, err := readClasses(filepath.Join(t.TempDir(), "classes.txt")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("a missing class file: %v", err)
	}
}

func writeClasses(t *testing.T, dir string, classes ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "classes.txt"), []byte(strings.Join(classes, "\n")+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
}

func TestSelectAnswers(t *testing.T) {
	puppetState := filepath.Join(t.TempDir(), "puppet-state")
	writeClasses(t, puppetState, "settings", "default", "profile::web", "ntp")
	started := 0
	n := selectNode(t, []string{"cat", "testdata/facts_puppet7.json"}, puppetState, "", &started)

	for sel, want := range map[string]string{
		"class:ntp":                              protocol.SelectMatch,
		"class:NTP and not class:apache":         protocol.SelectMatch,
		"class:apache":                           protocol.SelectNoMatch,
		"tag:segment=qa":                         protocol.SelectMatch, // SERF_TAG_SEGMENT
		"tag:segment=prod or class:apache":       protocol.SelectNoMatch,
		"class:apache and fact:os.family=Debian": protocol.SelectNoMatch, // decided without the facts
		"class:ntp or fact:os.family=Solaris":    protocol.SelectMatch,
	} {
		if st := askSelect(t, n, sel); st.Phase != want {
			t.Errorf("%s: %s (%s), want %s", sel, st.Phase, st.Message, want)
		}
	}
	if started != 0 {
		t.Fatalf("%d facts workers started for selections the classes decide", started)
	}
	// Undecided without the facts: a worker reads them (this test's, to
	// the end, before the next question).
	if st := askSelect(t, n, "not (class:ntp and fact:os.family=.*)"); st.Phase != protocol.SelectPending || started != 1 {
		t.Fatalf("facts needed: %+v, %d workers", st, started)
	}
	for sel, want := range map[string]string{
		"fact:os.family=Debian and fact:role=web":         protocol.SelectMatch,
		"fact:os.family=Deb":                              protocol.SelectNoMatch,
		"fact:processors.count=[2-9] and class:ntp":       protocol.SelectMatch,
		"not (class:ntp and fact:os.family=.*)":           protocol.SelectNoMatch,
		"fact:os.distro.description=Debian\\sGNU/Linux.*": protocol.SelectMatch,
		"fact:team=red":                                   protocol.SelectNoMatch,
	} {
		if st := askSelect(t, n, sel); st.Phase != want {
			t.Errorf("%s: %s (%s), want %s", sel, st.Phase, st.Message, want)
		}
	}
	if started != 1 {
		t.Errorf("%d facts workers started for fresh facts", started)
	}

	// Past facts_max_age, the facts are read again.
	b, _ := os.ReadFile(n.factsPath())
	var c factsCache
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	c.Read = c.Read.Add(-defaultFactsMaxAge - time.Second)
	b, _ = json.Marshal(c)
	if err := os.WriteFile(n.factsPath(), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if st := askSelect(t, n, "fact:role=web"); st.Phase != protocol.SelectPending || started != 2 {
		t.Fatalf("stale facts: %+v, %d workers", st, started)
	}
	if st := askSelect(t, n, "fact:role=web"); st.Phase != protocol.SelectMatch {
		t.Fatalf("read again: %+v", st)
	}

	// Without classes.txt the node says so, unless its facts decide.
	os.Remove(filepath.Join(puppetState, "classes.txt"))
	st := askSelect(t, n, "class:ntp and fact:role=web")
	if st.Phase != protocol.SelectError || !strings.Contains(st.Message, "classes.txt does not exist") {
		t.Fatalf("no classes.txt: %+v", st)
	}
	if st := askSelect(t, n, "class:ntp and fact:role=db"); st.Phase != protocol.SelectNoMatch {
		t.Fatalf("no classes.txt, facts decide: %+v", st)
	}

	// Bad requests are answered, as errors.
	for _, payload := range []string{`{"select":"class:"}`, `{"select":"class:a and"}`, `{"id":"d1","select":"class:ntp"}`} {
		if st := askStatus(t, n, payload); st.Phase != protocol.SelectError || !strings.HasPrefix(st.Message, "bad request") {
			t.Errorf("%s: %+v", payload, st)
		}
	}
}

func TestSelectWhenFactsCannotBeRead(t *testing.T) {
	puppetState := filepath.Join(t.TempDir(), "puppet-state")
	writeClasses(t, puppetState, "ntp")
	for _, c := range []struct {
		name, script, extra, want string
	}{
		{"fails", "echo 'Error: Facter: boom, no /proc' >&2; exit 3", "", "boom, no /proc"},
		{"garbage", "echo not json", "", "did not print one JSON object"},
		{"array", "echo '[1,2]'", "", "did not print one JSON object"},
		{"hangs", `sleep 300 & echo $! >"$PIDFILE"; wait`, "  facts_timeout: 1s\n", "did not finish within 1s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			t.Setenv("PIDFILE", pidFile)
			started := 0
			n := selectNode(t, []string{"sh", "-c", c.script}, puppetState, c.extra, &started)
			start := time.Now()
			if st := askSelect(t, n, "fact:os.family=Debian"); st.Phase != protocol.SelectPending {
				t.Fatalf("first: %+v", st)
			}
			took := time.Since(start)
			st := askSelect(t, n, "fact:os.family=Debian")
			if st.Phase != protocol.SelectError || !strings.Contains(st.Message, c.want) || !strings.Contains(st.Message, "failed") {
				t.Fatalf("%+v, want an error saying %q", st, c.want)
			}
			t.Logf("answer after %s: %s", took.Round(time.Millisecond), st.Message)
			if took > 10*time.Second {
				t.Fatalf("the facts command ran %s", took)
			}
			// The error is kept: asked again, the node answers it at once
			// and starts no other read.
			if st := askSelect(t, n, "fact:os.family=Debian"); st.Phase != protocol.SelectError || started != 1 {
				t.Fatalf("again: %+v, %d workers", st, started)
			}
			// Classes still decide when they can.
			if st := askSelect(t, n, "class:ntp or fact:os.family=Debian"); st.Phase != protocol.SelectMatch {
				t.Fatalf("classes decide: %+v", st)
			}
			if pid, err := os.ReadFile(pidFile); err == nil {
				// The whole process group was killed: no sleep left behind.
				p, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
				if alive(p) {
					t.Fatalf("the facts command's child %d outlived its timeout", p)
				}
			}
			if !strings.Contains(handlerLog(t, n), c.want) {
				t.Fatalf("handler.log does not say why:\n%s", handlerLog(t, n))
			}
		})
	}
}

// alive reports whether pid runs (a zombie waiting for init does not).
func alive(pid int) bool {
	for range 50 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		if _, rest, ok := strings.Cut(string(b), ") "); ok && strings.HasPrefix(rest, "Z") {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// A node whose state directory cannot be written cannot keep its facts:
// it says so instead of answering "reading facts" forever.
func TestSelectWithoutAStateDirectory(t *testing.T) {
	if os.Getuid() == 0 {
		// root writes anywhere; the read-only state directory is tested
		// with a tmpfs in TestReadOnlyStateDiskIsAnswered.
		n := selectNode(t, []string{"true"}, t.TempDir(), "", new(int))
		n.stateErr = fmt.Errorf("state directory %s: read-only file system", n.st.dir)
		if st := askSelect(t, n, "fact:a=b"); st.Phase != protocol.SelectError || !strings.Contains(st.Message, "read-only") {
			t.Fatalf("%+v", st)
		}
		return
	}
	t.Skip("needs root")
}

// Real Puppet 7: the facts `puppet facts show` prints for a node with an
// external fact, and the classes.txt `puppet apply` writes.
func TestSelectWithRealPuppet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real Puppet")
	}
	if _, err := exec.LookPath("puppet"); err != nil {
		t.Skip("no puppet")
	}
	pn := puppet.NewNode(t, "web-01")
	if err := os.MkdirAll(pn.ExternalFactsDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pn.ExternalFactsDir(), "role.yaml"), []byte("role: web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := pn.ApplyArgs(filepath.Join(pn.Dir, "code", "modules"),
		manifest(t, "class ntp {}\nclass profile::web { include ntp }\nnode default { include profile::web }\n"))
	args = append(args, "--write_catalog_summary")
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, puppet.Output(out))
	}
	started := 0
	n := selectNode(t, pn.FactsArgs(), pn.StateDir(), "", &started)
	start := time.Now()
	if st := askSelect(t, n, "fact:role=web and class:profile::web"); st.Phase != protocol.SelectPending {
		t.Fatalf("%+v", st)
	}
	t.Logf("puppet facts show: %s", time.Since(start).Round(time.Millisecond))
	for sel, want := range map[string]string{
		"fact:role=web and class:profile::web and fact:os.family=.+": protocol.SelectMatch,
		"fact:role=db or class:apache":                               protocol.SelectNoMatch,
		"fact:puppetversion=7\\..*":                                  protocol.SelectMatch,
	} {
		if st := askSelect(t, n, sel); st.Phase != want {
			t.Errorf("%s: %s %s, want %s", sel, st.Phase, st.Message, want)
		}
	}
}
