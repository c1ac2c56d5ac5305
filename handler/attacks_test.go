package handler

// Attacks on a node found in review (docs/security.md), each through the
// real handler code with a real node directory: a replayed deploy, keys in
// another case, forged log lines, and tampered, full or read-only state.

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/puppet"
)

// nodeAt is a node of role whose state directory is stateDir, and whose
// worker is counted, not started.
func nodeAt(t *testing.T, role, stateDir string, started *int) *Node {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "node.yaml")
	cfg := "role: " + role + "\nstate_dir: " + stateDir + "\nenvironment: production\npuppet:\n  json_log: false\n  state_dir: " +
		filepath.Join(dir, "puppet-state") + "\n  summary_file: " + filepath.Join(dir, "summary.yaml") + "\n  command:\n    - /bin/true\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := NewNode(c, cfgPath, func(k string) string { return map[string]string{"SERF_SELF_NAME": role + "-01"}[k] })
	if err != nil {
		t.Fatalf("NewNode: %v", err)
	}
	n.worker = func(kind, id string) (int, error) {
		if started != nil {
			*started++
		}
		return os.Getpid(), nil
	}
	return n
}

func handlerLog(t *testing.T, n *Node) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.st.dir, "handler.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func askStatus(t *testing.T, n *Node, payload string) protocol.Status {
	t.Helper()
	var out bytes.Buffer
	if err := n.handleStatus(strings.NewReader(payload), &out); err != nil {
		t.Fatalf("handleStatus(%s): %v", payload, err)
	}
	var st protocol.Status
	if err := protocol.DecodeStrict(out.Bytes(), &st); err != nil {
		t.Fatalf("handleStatus(%s) answered %q: %v", payload, out.String(), err)
	}
	return st
}

// A deploy event replayed by serf (-replay after a rejoin) once its
// runs/<id> was pruned: before, the master took it for a new deploy and
// installed the old ref again.
func TestReplayedDeployAfterPruneIsNotHandledAgain(t *testing.T) {
	synced := 0
	n := nodeAt(t, RoleMaster, filepath.Join(t.TempDir(), "state"), &synced)
	payload := `{"id":"old-1","module":"motd","ref":"v1"}`
	if err := n.handleDeploy(strings.NewReader(payload)); err != nil || synced != 1 {
		t.Fatalf("first delivery: %v, %d syncs", err, synced)
	}
	n.st.prune(0) // 200 later runs on a node that is master and target
	if _, err := os.Stat(n.st.runDir("old-1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("not pruned: %v", err)
	}
	if err := n.handleDeploy(strings.NewReader(payload)); err != nil {
		t.Fatal(err)
	}
	if synced != 1 {
		t.Fatalf("the replayed deploy was synced again (%d syncs)", synced)
	}
	if _, err := os.Stat(n.st.runDir("old-1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the replay made a new record")
	}
	if log := handlerLog(t, n); strings.Count(log, "deploy old-1: already handled") != 1 {
		t.Fatalf("the replay is not noted:\n%s", log)
	}
}

// The memory of handled deploys is bounded: the oldest id goes first.
func TestHandledDeploysAreBounded(t *testing.T) {
	s := state{dir: t.TempDir()}
	var ids []string
	for i := range maxHandled {
		ids = append(ids, "deploy-"+strconv.Itoa(i))
	}
	if err := os.WriteFile(s.handledPath(), []byte(strings.Join(ids, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.rememberHandled("newest"); err != nil {
		t.Fatal(err)
	}
	got, err := s.handledIDs()
	if err != nil || len(got) != maxHandled || got[0] != ids[1] || got[len(got)-1] != "newest" {
		t.Fatalf("%d ids, first %q, last %q, %v", len(got), got[0], got[len(got)-1], err)
	}
	// A node upgraded from a version without the file: its deploys still
	// in runs/ count as handled.
	s = state{dir: t.TempDir()}
	if err := s.create(&Record{ID: "before-upgrade", Kind: KindSync}); err != nil {
		t.Fatal(err)
	}
	if seen, err := s.handled("before-upgrade"); !seen || err != nil {
		t.Fatalf("a deploy in runs/ before the file existed: %v %v", seen, err)
	}
}

// encoding/json took {"ID":…,"MODULE":…} for {"id":…,"module":…}.
func TestUpperCaseKeysAreRefusedAndLogged(t *testing.T) {
	synced := 0
	m := nodeAt(t, RoleMaster, filepath.Join(t.TempDir(), "state"), &synced)
	if err := m.handleDeploy(strings.NewReader(`{"ID":"uc-1","MODULE":"motd","REF":"v1"}`)); err != nil {
		t.Fatal(err)
	}
	if synced != 0 {
		t.Fatal("a deploy with upper-case keys was synced")
	}
	if _, err := os.Stat(m.st.runDir("uc-1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a deploy with upper-case keys was recorded")
	}
	if log := handlerLog(t, m); !strings.Contains(log, "deploy event rejected") || !strings.Contains(log, "case-sensitive") {
		t.Fatalf("no rejection logged:\n%s", log)
	}

	a := nodeAt(t, RoleAgent, filepath.Join(t.TempDir(), "state"), nil)
	if ans := ask(t, a, `{"Id":"uc-2"}`); ans.Result != protocol.RunRejected || !strings.Contains(ans.Message, "case-sensitive") {
		t.Fatalf("puppetrun with Id: %+v", ans)
	}
	if st := askStatus(t, a, `{"ID":"uc-2"}`); st.ID != "" || !strings.HasPrefix(st.Message, "bad request: ") {
		t.Fatalf("puppet-status with ID: %+v", st)
	}
	log := handlerLog(t, a)
	if !strings.Contains(log, "puppetrun rejected") || !strings.Contains(log, "puppet-status rejected") {
		t.Fatalf("rejections not logged:\n%s", log)
	}
}

// Whatever a message carries (a tag key from a payload, an error quoting
// one), it is one line of handler.log.
func TestHandlerLogLinesCannotBeForged(t *testing.T) {
	n := nodeAt(t, RoleMaster, filepath.Join(t.TempDir(), "state"), nil)
	n.log.Printf("deploy x: no alive node matched --tag %s=qa", "segment\nmaster-01[1] 2026/01/01 00:00:00 deploy y: installed\r\x1b[2K\u2028\xff")
	log := handlerLog(t, n)
	if lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n"); len(lines) != 1 {
		t.Fatalf("one message made %d lines:\n%s", len(lines), log)
	}
	for _, want := range []string{`segment\nmaster-01[1]`, `\r\x1b[2K\u2028\xff=qa`} {
		if !strings.Contains(log, want) {
			t.Fatalf("log line %q lacks %q", log, want)
		}
	}
}

// A run record that cannot be read (empty or not JSON) was answered as no
// record at all, and a retry of the id as "already", which the CLI waited
// on until its timeout.
func TestUnreadableRecordIsSaidAndNamed(t *testing.T) {
	for _, damage := range []string{"", "{not json"} {
		a := nodeAt(t, RoleAgent, filepath.Join(t.TempDir(), "state"), nil)
		if ans := ask(t, a, `{"id":"bad-1"}`); ans.Result != protocol.RunStarted {
			t.Fatalf("first: %+v", ans)
		}
		a.st.clearActive("bad-1")
		if err := os.WriteFile(a.st.recordPath("bad-1", KindRun), []byte(damage), 0o600); err != nil {
			t.Fatal(err)
		}
		st := askStatus(t, a, `{"id":"bad-1"}`)
		if st.Phase != protocol.PhaseFailed || st.Reason != protocol.ReasonStateError || !strings.Contains(st.Message, "runs/bad-1/run.json") {
			t.Fatalf("status of a record made %q: %+v", damage, st)
		}
		if st := askStatus(t, a, `{"id":"bad-1","known":true}`); st.Phase != protocol.PhaseFailed {
			t.Fatalf("known-only status of a record made %q: %+v", damage, st)
		}
		if ans := ask(t, a, `{"id":"bad-1"}`); ans.Result != protocol.RunRejected || !strings.Contains(ans.Message, "runs/bad-1") {
			t.Fatalf("retry of an id with a record made %q: %+v", damage, ans)
		}
	}
	m := nodeAt(t, RoleMaster, filepath.Join(t.TempDir(), "state"), nil)
	if err := m.handleDeploy(strings.NewReader(`{"id":"bad-2","module":"motd","ref":"v1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.st.recordPath("bad-2", KindSync), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st := askStatus(t, m, `{"id":"bad-2"}`)
	if st.Sync != protocol.PhaseFailed || st.SyncReason != protocol.ReasonStateError || !strings.Contains(st.SyncMsg, "runs/bad-2/sync.json") {
		t.Fatalf("master's status of an empty sync record: %+v", st)
	}
}

// A claim left by a write that failed (the disk was full) kept its id
// "already" taken, with no record, for good.
func TestStaleClaimIsRecovered(t *testing.T) {
	started := 0
	a := nodeAt(t, RoleAgent, filepath.Join(t.TempDir(), "state"), &started)
	claim := a.st.recordPath("claimed-1", KindRun) + ".claim"
	if err := os.MkdirAll(filepath.Dir(claim), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(claim, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Said so, but not final: an agent that left mid-query leaves such a
	// claim too (its handler stopped between the claim and the write), and
	// a "failed" answer made a churn deploy exit 1 for a node the re-sent
	// request would have run on.
	st := askStatus(t, a, `{"id":"claimed-1"}`)
	if st.Phase != protocol.PhaseUnknown || !strings.Contains(st.Message, "never written") {
		t.Fatalf("status of a claim without a record: %+v", st)
	}
	if ans := ask(t, a, `{"id":"claimed-1"}`); ans.Result != protocol.RunStarted || started != 1 {
		t.Fatalf("the stale claim was not recovered: %+v, %d started", ans, started)
	}
	if rec, err := a.st.load("claimed-1", KindRun); err != nil || rec.WorkerPID != os.Getpid() {
		t.Fatalf("record after recovery: %+v %v", rec, err)
	}
}

// A Puppet run lock that names a live process which is not Puppet (its pid
// reused after a Puppet run died) was taken as a run in progress: every
// request was busy, or queued until --timeout. Puppet clears such a lock.
func TestPuppetLockOfAnotherProcessIsNotBusy(t *testing.T) {
	hold := func(t *testing.T, a *Node, name string) {
		t.Helper()
		bin := "sleep"
		if name != "" {
			sleep, err := exec.LookPath("sleep")
			if err != nil {
				t.Fatal(err)
			}
			bin = filepath.Join(t.TempDir(), name) // its process name is the link's
			if err := os.Symlink(sleep, bin); err != nil {
				t.Fatal(err)
			}
		}
		p := exec.Command(bin, "60")
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Process.Kill(); p.Wait() })
		if err := os.MkdirAll(a.cfg.Puppet.StateDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a.cfg.Puppet.StateDir, "agent_catalog_run.lock"), []byte(strconv.Itoa(p.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := nodeAt(t, RoleAgent, filepath.Join(t.TempDir(), "state"), nil)
	hold(t, a, "")
	if ans := ask(t, a, `{"id":"lock-1"}`); ans.Result != protocol.RunStarted {
		t.Fatalf("a lock naming sleep: %+v", ans)
	}
	for _, name := range []string{"puppet", "puppet-agent"} {
		a := nodeAt(t, RoleAgent, filepath.Join(t.TempDir(), "state"), nil)
		hold(t, a, name)
		if ans := ask(t, a, `{"id":"lock-2"}`); ans.Result != protocol.RunBusy {
			t.Fatalf("a lock naming a live %s process: %+v", name, ans)
		}
	}
}

// mountTmpfs mounts a tmpfs of size at a new directory for the test, or
// skips the test where mounting is not allowed (not root).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs to stand for a full or read-only disk (run as root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// A full state disk: the puppetrun handler failed with no answer (the node
// looked lost) and left a claim that kept the id stuck once space was freed.
func TestFullStateDiskIsAnswered(t *testing.T) {
	disk := mountTmpfs(t, "64k")
	started := 0
	a := nodeAt(t, RoleAgent, filepath.Join(disk, "state"), &started)
	filler := filepath.Join(disk, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := f.Write(make([]byte, 4096)); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	ans := ask(t, a, `{"id":"full-1"}`)
	if ans.Result != protocol.RunRejected || !strings.Contains(ans.Message, "no space left on device") || ans.Node != "agent-01" || started != 0 {
		t.Fatalf("puppetrun on a full disk: %+v, %d started", ans, started)
	}
	st := askStatus(t, a, `{"id":"full-1"}`)
	if st.Phase != protocol.PhaseFailed || st.Reason != protocol.ReasonStateError || !strings.Contains(st.Message, "no space left on device") {
		t.Fatalf("status on a full disk: %+v", st)
	}
	if st := askStatus(t, a, ``); st.Reason != protocol.ReasonStateError || !strings.Contains(st.Message, "no space left on device") {
		t.Fatalf("node status on a full disk: %+v", st)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if ans := ask(t, a, `{"id":"full-1"}`); ans.Result != protocol.RunStarted || started != 1 {
		t.Fatalf("puppetrun once space was freed: %+v", ans)
	}
}

// A read-only state disk: the handler could not open handler.log, failed
// before reading the query, and the node was silent.
func TestReadOnlyStateDiskIsAnswered(t *testing.T) {
	disk := mountTmpfs(t, "1m")
	state := filepath.Join(disk, "state")
	// The directory and its log, as before the disk failed.
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "handler.log"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("", disk, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	started := 0
	a := nodeAt(t, RoleAgent, state, &started) // serf starts a new handler for each query
	ans := ask(t, a, `{"id":"ro-1"}`)
	if ans.Result != protocol.RunRejected || !strings.Contains(ans.Message, "read-only file system") || started != 0 {
		t.Fatalf("puppetrun on a read-only disk: %+v", ans)
	}
	st := askStatus(t, a, `{"id":"ro-1"}`)
	if st.Phase != protocol.PhaseFailed || st.Reason != protocol.ReasonStateError || !strings.Contains(st.Message, "read-only file system") {
		t.Fatalf("status on a read-only disk: %+v", st)
	}
	m := nodeAt(t, RoleMaster, state, nil)
	if st := askStatus(t, m, `{"id":"ro-1"}`); st.Sync != protocol.PhaseFailed || !strings.Contains(st.SyncMsg, "read-only file system") {
		t.Fatalf("master's status on a read-only disk: %+v", st)
	}
}

// The test rigs' stand-in for a Puppet run in progress is one that Puppet
// 7, and so the handler, take for one (a lock naming sleep is not).
func TestHoldRunLockIsARunInProgress(t *testing.T) {
	pn := puppet.NewNode(t, "agent-01")
	release, err := pn.HoldRunLock()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	a := nodeAt(t, RoleAgent, filepath.Join(t.TempDir(), "state"), nil)
	a.cfg.Puppet.StateDir = pn.StateDir()
	if ans := ask(t, a, `{"id":"held-1"}`); ans.Result != protocol.RunBusy {
		t.Fatalf("with puppet's run lock held: %+v", ans)
	}
}

// A run claimed by a handler that was stopped before any worker took it
// (its agent left mid-query and took its handlers along) never started.
// It was called failed (worker_died) 30 s later, and a deploy exited 1 for
// a node that never ran (bench/fleet churn, 150 agents, 15 leaving and
// rejoining). Now it is no record, said so, and the next request runs it,
// whether a status query or the request comes first.
func TestRunWhoseHandlerWasStoppedIsTakenOver(t *testing.T) {
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	for _, statusFirst := range []bool{true, false} {
		started := 0
		a := nodeAt(t, RoleAgent, filepath.Join(t.TempDir(), "state"), &started)
		rec := a.newRecord("orphan-1", KindRun, protocol.PhasePending, protocol.Request{}, nil)
		rec.HandlerPID, rec.HandlerStart = gone.Process.Pid, 1
		if err := a.st.create(rec); err != nil {
			t.Fatal(err)
		}
		if statusFirst {
			st := askStatus(t, a, `{"id":"orphan-1"}`)
			if st.Phase != protocol.PhaseUnknown || !strings.Contains(st.Message, "never written") {
				t.Fatalf("status of a run whose handler was stopped: %+v", st)
			}
		}
		if ans := ask(t, a, `{"id":"orphan-1"}`); ans.Result != protocol.RunStarted || started != 1 {
			t.Fatalf("status first %v: not taken over: %+v, %d started", statusFirst, ans, started)
		}
	}
}
