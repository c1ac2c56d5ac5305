package handler

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/puppet"
)

// The testdata summaries are what Puppet 7.23.0 wrote (`puppet apply` of a
// manifest with two files, a notify and an exec of /bin/false; then of two
// files, one already there).
const (
	realFailedSummary  = "testdata/last_run_summary_puppet7_failed.yaml"
	realChangedSummary = "testdata/last_run_summary_puppet7_changed.yaml"
)

// agentWithSummary is an agent whose Puppet summary file is a copy of src
// ("" for none) and whose daemon pidfile is in its own directory.
func agentWithSummary(t *testing.T, src string) *Node {
	t.Helper()
	a := nodeAt(t, RoleAgent, filepath.Join(t.TempDir(), "state"), nil)
	a.cfg.Puppet.PIDFile = filepath.Join(t.TempDir(), "agent.pid")
	if src != "" {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(a.cfg.Puppet.SummaryFile, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// addRun records a finished serfdeploy run of id on n, from start to end.
func addRun(t *testing.T, n *Node, id string, start, end time.Time, version string) {
	t.Helper()
	r := &Record{ID: id, Kind: KindRun, Phase: protocol.PhaseFinished, Created: start, Started: start, Finished: end, Outcome: protocol.Outcome{ConfigVersion: version}}
	if err := n.st.create(r); err != nil {
		t.Fatal(err)
	}
}

func TestPuppetStateFromARealPuppet7Summary(t *testing.T) {
	a := agentWithSummary(t, realFailedSummary)
	st := askStatus(t, a, "")
	want := protocol.PuppetState{At: 1796606075, Version: "1796606075", Total: 11, Changed: 3, Failed: 1, OutOfSync: 4,
		ConfigRetrieval: 0.092, Duration: 0.04, Fail: true, By: protocol.ByOther, Daemon: protocol.DaemonStopped}
	if st.Puppet == nil || *st.Puppet != want {
		t.Fatalf("puppet state %+v, want %+v", st.Puppet, want)
	}

	a = agentWithSummary(t, realChangedSummary)
	st = askStatus(t, a, "")
	want = protocol.PuppetState{At: 1796606201, Version: "1796606201", Total: 9, Changed: 1, OutOfSync: 1,
		ConfigRetrieval: 0.047, Duration: 0.012, By: protocol.ByOther, Daemon: protocol.DaemonStopped}
	if st.Puppet == nil || *st.Puppet != want {
		t.Fatalf("puppet state %+v, want %+v", st.Puppet, want)
	}
}

// The test rigs' stand-in Puppet writes a summary in Puppet 7's layout,
// which reads as a real one does.
func TestPuppetStateFromTheStandIn(t *testing.T) {
	si, err := deployrig.WriteStandIn(t.TempDir(), map[string]deployrig.StandInRun{"agent-01": {Duration: 10 * time.Millisecond, Changed: true}})
	if err != nil {
		t.Fatal(err)
	}
	a := agentWithSummary(t, "")
	before := time.Now().Unix()
	if out, err := exec.Command("/bin/sh", si.Path, "agent-01", a.cfg.Puppet.SummaryFile).CombinedOutput(); err == nil || !strings.Contains(err.Error(), "exit status 2") {
		t.Fatalf("the stand-in: %v\n%s", err, out)
	}
	st := askStatus(t, a, "")
	p := st.Puppet
	if p == nil || p.Error != "" || p.At < before || p.At > time.Now().Unix() || p.Total != 8 || p.Changed != 1 || p.OutOfSync != 1 ||
		p.ConfigRetrieval != 0.05 || p.Duration != 0.01 || p.Fail || p.By != protocol.ByOther || p.Version == "" {
		t.Fatalf("the stand-in's summary read as %+v", p)
	}
}

// A run serfdeploy made is said to be serfdeploy's; one made after it,
// or between two of its runs, is someone else's.
func TestPuppetStateSaysWhoRanPuppet(t *testing.T) {
	at := time.Unix(1796606075, 0) // the summary's time.last_run
	for _, c := range []struct {
		name    string
		runs    [][2]time.Time
		by, ver string
	}{
		{"no serfdeploy run", nil, protocol.ByOther, "1796606075"},
		{"serfdeploy's last run", [][2]time.Time{{at.Add(-20 * time.Second), at.Add(300 * time.Millisecond)}}, protocol.BySerfdeploy, ""},
		{"after serfdeploy's last run", [][2]time.Time{{at.Add(-time.Hour), at.Add(-time.Hour + 20*time.Second)}}, protocol.ByOther, "1796606075"},
		// serfdeploy's newest run wrote no summary (no catalog): the
		// summary is of its run before.
		{"an older serfdeploy run", [][2]time.Time{{at.Add(-10 * time.Second), at}, {at.Add(time.Hour), at.Add(time.Hour + time.Second)}}, protocol.BySerfdeploy, ""},
		{"between two serfdeploy runs", [][2]time.Time{{at.Add(-time.Hour), at.Add(-time.Hour + 9*time.Second)}, {at.Add(time.Hour), at.Add(time.Hour + time.Second)}}, protocol.ByOther, "1796606075"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := agentWithSummary(t, realFailedSummary)
			for i, r := range c.runs {
				addRun(t, a, "run-"+strconv.Itoa(i), r[0], r[1], "1796606075")
			}
			st := askStatus(t, a, "")
			if st.Puppet == nil || st.Puppet.By != c.by || st.Puppet.Version != c.ver || st.Puppet.Total != 11 {
				t.Fatalf("puppet state %+v, want by %q, ver %q", st.Puppet, c.by, c.ver)
			}
		})
	}
}

// A node whose summary is missing or cannot be read says so and why; it
// never answers as a node without runs.
func TestPuppetStateSaysWhyThereAreNoFigures(t *testing.T) {
	for _, c := range []struct {
		name, want string
		setup      func(path string) error
	}{
		{"missing", "Puppet has not run here, or node.yaml's puppet.summary_file is wrong", func(string) error { return nil }},
		{"a directory", "is a directory", func(p string) error { return os.Mkdir(p, 0o755) }},
		{"not YAML", "is not a Puppet summary", func(p string) error { return os.WriteFile(p, []byte("resources: [\n"), 0o644) }},
		{"no last_run", "has no time.last_run", func(p string) error { return os.WriteFile(p, []byte("---\nresources:\n  total: 3\n"), 0o644) }},
		{"huge", "over 65536 bytes", func(p string) error { return os.WriteFile(p, bytes.Repeat([]byte("# x\n"), 20000), 0o644) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := agentWithSummary(t, "")
			if err := c.setup(a.cfg.Puppet.SummaryFile); err != nil {
				t.Fatal(err)
			}
			st := askStatus(t, a, "")
			if st.Puppet == nil || !strings.Contains(st.Puppet.Error, c.want) || st.Puppet.At != 0 {
				t.Fatalf("puppet state %+v, want an error saying %q", st.Puppet, c.want)
			}
			if c.name == "missing" && !strings.Contains(st.Puppet.Error, a.cfg.Puppet.SummaryFile) {
				t.Fatalf("the error does not name the file: %q", st.Puppet.Error)
			}
		})
	}
}

// Puppet's catalog lock held by a live Puppet process is a run now,
// whoever started it; the daemon runs while its pidfile names one.
func TestPuppetStateSeesRunsAndTheDaemon(t *testing.T) {
	pn := puppet.NewNode(t, "agent-01")
	release, err := pn.HoldRunLock()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	a := agentWithSummary(t, realChangedSummary)
	a.cfg.Puppet.StateDir = pn.StateDir()
	lock, err := os.ReadFile(filepath.Join(pn.StateDir(), "agent_catalog_run.lock"))
	if err != nil {
		t.Fatal(err)
	}
	// The run lock's holder is a process called puppet: as a daemon's pid.
	if err := os.WriteFile(a.cfg.Puppet.PIDFile, append(lock, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	st := askStatus(t, a, "")
	if st.Puppet == nil || !st.Puppet.Running || st.Puppet.Daemon != protocol.DaemonRunning || st.Running != "" {
		t.Fatalf("with a Puppet run and daemon: %+v (serfdeploy's own run %q)", st.Puppet, st.Running)
	}
	// A pidfile naming another process (a reused pid) is a stopped daemon.
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleep.Process.Kill(); sleep.Wait() }()
	if err := os.WriteFile(a.cfg.Puppet.PIDFile, []byte(strconv.Itoa(sleep.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if st := askStatus(t, a, ""); st.Puppet.Daemon != protocol.DaemonStopped {
		t.Fatalf("a pidfile naming sleep: %+v", st.Puppet)
	}
}

// nearLimitStatus is an empty-id answer with names, ids and texts long:
// a 60-byte FQDN, Jenkins ids, a commit as ref, every free text and the
// code version hundreds of bytes, every count at 5 or 6 digits.
func nearLimitStatus(name string, ps protocol.PuppetState) protocol.Status {
	exit := 6
	id := "jenkins-platform-puppet-release-pipeline-1234-k3f9ab"
	return protocol.Status{V: protocol.Version, Node: name, Role: RoleAgent, Phase: protocol.PhaseRunning, Running: id,
		Reason: protocol.ReasonStateError, Message: strings.Repeat("state error ", 40),
		Last: &protocol.Status{ID: id, Phase: protocol.PhaseFailed, Reason: protocol.ReasonResourcesFailed, Message: strings.Repeat("<failed> ", 200),
			Exit: &exit, Changed: 12345, Failed: 1234, Total: 123456, Duration: 12345.67, Started: 1796606000, Finished: 1796606075,
			Request: protocol.Request{Module: "profile_webserver", Ref: "0123456789abcdef0123456789abcdef01234567", Environment: "production"},
			Applied: "profile_webserver=0123456789abcdef0123456789abcdef01234567", Targets: 9999},
		LogSetAside: 999, Disabled: "puppet agent is disabled: " + strings.Repeat("d", 300), Puppet: &ps}
}

// The empty-id answer with everything long still fits serf's 1,024 bytes:
// the free texts are cut, the Puppet figures are whole. Past what any
// name allows, the figures give way (said so), never the answer.
func TestStatusAnswerWithPuppetStateFitsNearTheLimit(t *testing.T) {
	a := agentWithSummary(t, realFailedSummary)
	a.name = "web-frontend-0042.eu-west-1b.example.com"
	ps := protocol.PuppetState{At: 1796606075, Version: strings.Repeat("module_name=0123456789abcdef0123456789abcdef01234567,", 12),
		Total: 123456, Changed: 12345, Failed: 1234, OutOfSync: 12345, ConfigRetrieval: 1234.567, Duration: 12345.678,
		Fail: true, By: protocol.ByOther, Running: true, Daemon: protocol.DaemonRunning}
	st := nearLimitStatus(a.name, ps)
	var out bytes.Buffer
	if err := a.writeStatus(&out, &st); err != nil {
		t.Fatal(err)
	}
	size := protocol.ResponseSize(a.name, out.Bytes())
	var back protocol.Status
	if err := json.Unmarshal(out.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if size > protocol.MaxQueryResponse || size < protocol.MaxQueryResponse-64 || back.Puppet == nil {
		t.Fatalf("answer of %d bytes (serf size %d), want it just under the limit: %s", out.Len(), size, out.Bytes())
	}
	got := *back.Puppet
	got.Version = ps.Version
	if got != ps || back.Puppet.Version == "" || back.Disabled == "" || back.Last.Message == "" || back.Message == "" {
		t.Fatalf("figures changed on the way, or a text emptied: %s", out.Bytes())
	}
	t.Logf("answer near the limit: %d bytes as serf sizes it (%d of JSON); its Puppet object %d bytes with ver cut to %d",
		size, out.Len(), len(mustJSON(t, back.Puppet)), len(back.Puppet.Version))

	// Longer names: the figures give way to a short reason, then go, and
	// never cost the answer a text it would have kept without them.
	seen := map[string]bool{}
	for l := 40; l <= 160; l += 5 {
		a.name = strings.Repeat("n", l)
		base := nearLimitStatus(a.name, ps)
		base.Puppet = nil
		if _, err := protocol.EncodeAnswer(a.name, &base, &base.Message, &base.SyncMsg, &base.Disabled, &base.Last.Message); err != nil {
			break // too long for any answer, with or without figures
		}
		st := nearLimitStatus(a.name, ps)
		out.Reset()
		if err := a.writeStatus(&out, &st); err != nil {
			t.Fatalf("%d-byte name: %v", l, err)
		}
		var back protocol.Status
		if err := json.Unmarshal(out.Bytes(), &back); err != nil || protocol.ResponseSize(a.name, out.Bytes()) > protocol.MaxQueryResponse ||
			(base.Disabled != "") != (back.Disabled != "") || (base.Last.Message != "") != (back.Last.Message != "") {
			t.Fatalf("%d-byte name (%v): %s\nwithout the figures: %+v", l, err, out.Bytes(), base)
		}
		switch p := back.Puppet; {
		case p == nil:
			seen["none"] = true
		case p.Error == figuresLeftOut:
			seen["reason"] = true
		case p.Total == ps.Total && p.At == ps.At && p.Daemon == ps.Daemon:
			seen["figures"] = true
		default:
			t.Fatalf("%d-byte name: puppet %+v", l, p)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("saw only %v as the names grew", seen)
	}

	// The usual answer: an idle agent, its last run by serfdeploy.
	a = agentWithSummary(t, realChangedSummary)
	a.name = "agent-01.example.com"
	addRun(t, a, "jenkins-release-42-k3f9ab", time.Unix(1796606190, 0), time.Unix(1796606202, 0), "1796606201")
	out.Reset()
	if err := a.handleStatus(strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("an idle agent's answer: %d bytes as serf sizes it: %s", protocol.ResponseSize(a.name, out.Bytes()), out.Bytes())
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
