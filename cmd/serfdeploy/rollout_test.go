package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// runRecords lists the ids of the run records on a node: what its handler
// took, whoever sent it.
func runRecords(t *testing.T, f *deployrig.Rig, node string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(f.StateDir(node), "runs"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids
}

// TestTargetingSafety: --max-targets refuses before anything is sent,
// --dry-run lists targets, masters and the payload and sends nothing, and
// Puppet tags that are not Puppet's syntax never leave the CLI.
func TestTargetingSafety(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	r := f.CLI(nil, deployArgs("--ref", "v1", "--max-targets", "2", "--id", "too-many")...)
	if r.Code != 2 || !strings.Contains(r.Stderr, "3 nodes match") || !strings.Contains(r.Stderr, "--max-targets 2") {
		t.Fatalf("--max-targets: %s", r)
	}

	r = f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--dry-run", "--id", "dry-one", "--noop", "--puppet-tags", "motd")...)
	if r.Code != 0 {
		t.Fatalf("--dry-run: %s", r)
	}
	for _, want := range []string{"dry run of deploy dry-one: nothing was sent", "targets (2, --tag segment=qa): agent-01 agent-02",
		"masters (1): master-01", "would send event deploy (", `"noop":true`, `"puppet_tags":"motd"`} {
		if !strings.Contains(r.Stdout, want) {
			t.Fatalf("--dry-run output lacks %q:\n%s", want, r)
		}
	}
	r = f.CLI(nil, "run", "--tag", "segment=prod", "--dry-run", "--format", "json", "--id", "dry-two")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"targets": [`) || !strings.Contains(r.Stdout, `"agent-03"`) || !strings.Contains(r.Stdout, `"send": "query puppetrun"`) {
		t.Fatalf("run --dry-run --format json: %s", r)
	}

	for _, bad := range [][]string{{"--puppet-tags", "motd;rm -rf /"}, {"--skip-tags", "Big Tag"}, {"--on-disabled", "maybe"}} {
		r = f.CLI(nil, deployArgs(append([]string{"--ref", "v1", "--tag", "segment=qa"}, bad...)...)...)
		if r.Code != 2 || !strings.Contains(r.Stderr, bad[0]) || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 1 {
			t.Fatalf("%v: %s", bad, r)
		}
	}

	// Give a delivered event time to reach the handlers, then look: no
	// node took anything, and no module was installed.
	time.Sleep(2 * time.Second)
	for _, n := range []string{"master-01", "agent-01", "agent-02", "agent-03"} {
		if ids := runRecords(t, f, n); len(ids) != 0 {
			t.Fatalf("%s has records %v: something was sent", n, ids)
		}
	}
	if f.File("agent-01") != "" {
		t.Fatal("a refused or dry deploy applied the module")
	}
}

// TestNoopPendingChanges: a noop deploy reports the pending changes with
// exit 6 and changes nothing; after the real deploy a noop run exits 0.
// --puppet-tags reaches Puppet, and run --expect-version catches a node
// whose applied code is not the one expected.
func TestNoopPendingChanges(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	r := f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--noop", "--format", "json")...)
	if r.Code != 6 {
		t.Fatalf("noop deploy: want exit 6: %s", r)
	}
	res := decodeResult(t, r)
	if !res.Noop || len(res.Nodes) != 2 || !strings.Contains(res.Outcome, "2 with pending changes") {
		t.Fatalf("noop result %+v", res)
	}
	for _, n := range res.Nodes {
		if n.State != "finished" || n.Pending < 1 || n.Changed != 0 {
			t.Fatalf("%s: %+v", n.Node, n)
		}
	}
	if f.File("agent-01") != "" || f.File("agent-02") != "" {
		t.Fatal("a noop deploy changed a file")
	}

	// A tag no resource has: Puppet applies nothing.
	r = f.CLI(nil, "run", "--tag", "segment=qa", "--puppet-tags", "no_such_tag", "--poll-interval", "500ms")
	if r.Code != 0 || f.File("agent-01") != "" {
		t.Fatalf("run --puppet-tags no_such_tag: %s (file %q)", r, f.File("agent-01"))
	}

	r = f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa")...)
	if r.Code != 0 || f.File("agent-01") == "" {
		t.Fatalf("real deploy: %s", r)
	}
	r = f.CLI(nil, "run", "--tag", "segment=qa", "--noop", "--poll-interval", "500ms")
	if r.Code != 0 || !strings.Contains(r.Stdout, "every target finished without failures") {
		t.Fatalf("noop run after the deploy: want exit 0: %s", r)
	}

	v1 := f.Repo.Rev("v1")
	r = f.CLI(nil, "run", "--tag", "segment=qa", "--expect-version", "motd="+v1[:10], "--poll-interval", "500ms")
	if r.Code != 0 {
		t.Fatalf("--expect-version of the installed commit: %s", r)
	}
	r = f.CLI(nil, "run", "--tag", "segment=qa", "--expect-version", "motd=0123456789", "--poll-interval", "500ms", "--format", "json")
	if r.Code != 1 {
		t.Fatalf("--expect-version of another commit: want exit 1: %s", r)
	}
	for _, n := range decodeResult(t, r).Nodes {
		if n.State != "stale" || !strings.Contains(n.Message, "not the expected 0123456789") {
			t.Fatalf("%s: %+v", n.Node, n)
		}
	}
}

// TestDisableEnableAndSkip: `disable` sets Puppet's own agent lock on the
// matching nodes (never the whole fleet by default) and keeps another
// operator's reason; deploy reports disabled nodes failed, or skipped with
// their message (JUnit skipped) under --on-disabled skip; `status` shows
// it, and the code each node applied; `enable` clears it.
func TestDisableEnableAndSkip(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	if r := f.CLI(nil, "disable", "--message", "no filter"); r.Code != 2 || !strings.Contains(r.Stderr, "needs --tag or --node") {
		t.Fatalf("disable without a filter: %s", r)
	}
	if r := f.CLI(nil, "disable", "--node", "agent-01", "--message", "bad\x1b[31m"); r.Code != 2 {
		t.Fatalf("disable with escape codes in the message: %s", r)
	}
	r := f.CLI(nil, "disable", "--node", "agent-01", "--message", "kernel upgrade, bob")
	if r.Code != 0 || !strings.Contains(r.Stdout, "agent-01  disabled") {
		t.Fatalf("disable: %s", r)
	}
	lock, err := os.ReadFile(filepath.Join(f.Puppet["agent-01"].StateDir(), "agent_disabled.lock"))
	if err != nil || string(lock) != `{"disabled_message":"kernel upgrade, bob"}` {
		t.Fatalf("Puppet's lock file: %q %v", lock, err)
	}
	r = f.CLI(nil, "disable", "--tag", "segment=qa", "--message", "second opinion", "--format", "json")
	if r.Code != 0 || !strings.Contains(r.Stdout, `"result": "already"`) || !strings.Contains(r.Stdout, "kernel upgrade, bob") {
		t.Fatalf("disable again: %s", r)
	}
	// agent-02 was disabled by that second call; enable it again.
	if r := f.CLI(nil, "enable", "--node", "agent-02"); r.Code != 0 || !strings.Contains(r.Stdout, "enabled") {
		t.Fatalf("enable agent-02: %s", r)
	}

	r = f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--format", "json")...)
	if r.Code != 1 || states(decodeResult(t, r))["agent-01"] != "disabled" {
		t.Fatalf("deploy to a disabled node: want exit 1: %s", r)
	}
	junit := filepath.Join(t.TempDir(), "junit.xml")
	r = f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--on-disabled", "skip", "--junit", junit, "--format", "json")...)
	if r.Code != 0 {
		t.Fatalf("--on-disabled skip: want exit 0: %s", r)
	}
	got := states(decodeResult(t, r))
	if got["agent-01"] != "skipped" || got["agent-02"] != "finished" {
		t.Fatalf("states %v", got)
	}
	if f.File("agent-01") != "" || f.File("agent-02") == "" {
		t.Fatal("the disabled agent applied the release, or the other did not")
	}
	doc := parseJUnit(t, junit)
	for _, c := range doc.Suites[0].Cases {
		if c.Name == "agent-01" && (c.Skipped == nil || !strings.Contains(c.Skipped.Message, "kernel upgrade, bob")) {
			t.Fatalf("agent-01 case %+v", c)
		}
	}
	r = f.CLI(nil, "status", "--tag", "segment=qa")
	if r.Code != 0 || !strings.Contains(r.Stdout, "idle, disabled") || !strings.Contains(r.Stdout, "motd="+f.Repo.Rev("v1")) {
		t.Fatalf("status: %s", r)
	}

	if r := f.CLI(nil, "enable", "--node", "agent-01"); r.Code != 0 || !strings.Contains(r.Stdout, "kernel upgrade, bob") {
		t.Fatalf("enable: %s", r)
	}
	if r := f.CLI(nil, "run", "--node", "agent-01", "--poll-interval", "500ms"); r.Code != 0 || f.File("agent-01") == "" {
		t.Fatalf("run after enable: %s", r)
	}
}

// TestWatchReattaches: a deploy stopped by SIGTERM (a Jenkins abort) exits
// 4, says how to re-attach and leaves the run going; `watch ID` from
// another process follows it to the end with the deploy's exit code and
// reports. An unknown id is exit 3.
func TestWatchReattaches(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	f.Repo.CommitModule("v2-slow", f.Files, `  exec { 'slow': command => '/bin/sleep 8' }`)
	abortDeploy(t, f, "aborted-7", "agent-01", "--ref", "v2-slow", "--node", "agent-01")

	junit := filepath.Join(t.TempDir(), "junit.xml")
	r := f.CLI(nil, "watch", "aborted-7", "--poll-interval", "500ms", "--junit", junit, "--format", "json")
	if r.Code != 0 {
		t.Fatalf("watch: %s", r)
	}
	res := decodeResult(t, r)
	if res.Kind != "deploy" || res.Module != "motd" || res.Ref != "v2-slow" || res.Fired || states(res)["agent-01"] != "finished" || len(res.Nodes) != 1 {
		t.Fatalf("watch result %+v", res)
	}
	if got := f.File("agent-01"); got != "motd v2-slow on agent-01\n" {
		t.Fatalf("agent-01 file %q", got)
	}
	if doc := parseJUnit(t, junit); len(doc.Suites[0].Cases) != 1 {
		t.Fatalf("junit cases %+v", doc.Suites[0].Cases)
	}
	if ids := runRecords(t, f, "agent-01"); len(ids) != 1 {
		t.Fatalf("agent-01 ran %v: watch must not start a run", ids)
	}

	if r := f.CLI(nil, "watch", "no-such-deploy"); r.Code != 3 || !strings.Contains(r.Stderr, "no node has a record of deploy id no-such-deploy") {
		t.Fatalf("watch of an unknown id: %s", r)
	}

	// A rollout aborted in its first batch: the second batch never ran and
	// has no record; the watch must not call the deploy a success from the
	// records it finds (it did: exit 0).
	abortDeploy(t, f, "aborted-rollout", "agent-01", "--ref", "v2-slow", "--tag", "segment=qa", "--batch", "1")
	r = f.CLI(nil, "watch", "aborted-rollout", "--poll-interval", "500ms", "--format", "json")
	res = decodeResult(t, r)
	if r.Code != 4 || states(res)["agent-01"] != "finished" || !strings.Contains(res.Outcome, "the deploy listed 2 target(s) and only 1 have a record of it") {
		t.Fatalf("watch of an aborted rollout: %s", r)
	}
	if ids := runRecords(t, f, "agent-02"); slices.Contains(ids, "aborted-rollout") {
		t.Fatalf("agent-02 ran %v: the aborted rollout never reached its batch", ids)
	}
}

// abortDeploy starts a deploy, sends it SIGTERM (a Jenkins abort) once node
// has taken the run, and checks that it exits 4 naming `serfdeploy watch`.
func abortDeploy(t *testing.T, f *deployrig.Rig, id, node string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, deployArgs(append(args, "--id", id)...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SERF_RPC_ADDR=" + f.Cluster.Node("master-01").RPCAddr, "NO_COLOR=1"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The CLI is past firing once a node has the run's record.
	waitFor(t, time.Minute, func() bool { return slices.Contains(runRecords(t, f, node), id) })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 4 || !strings.Contains(stderr.String(), "serfdeploy watch "+id) {
		t.Fatalf("aborted deploy %s: exit %d (%v)\n%s", id, code, err, stderr.String())
	}
}

// runTimes reads when a node's run of id started and finished.
func runTimes(t *testing.T, f *deployrig.Rig, node, id string) (started, finished time.Time) {
	t.Helper()
	var rec struct{ Started, Finished time.Time }
	b, err := os.ReadFile(filepath.Join(f.StateDir(node), "runs", id, "run.json"))
	if err != nil || json.Unmarshal(b, &rec) != nil {
		t.Fatalf("record of %s on %s: %v %s", id, node, err, b)
	}
	return rec.Started, rec.Finished
}

// TestRollout: --batch runs one batch after another; a canary that fails
// stops the rollout with the other targets skipped and untouched (exit 1);
// --max-failures lets the rollout go on past a failure.
func TestRollout(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	r := f.CLI(nil, deployArgs("--ref", "v1", "--batch", "1", "--id", "rollout-1", "--format", "json")...)
	if r.Code != 0 {
		t.Fatalf("--batch 1: %s", r)
	}
	res := decodeResult(t, r)
	if got := states(res); len(got) != 3 || got["agent-01"] != "finished" || got["agent-03"] != "finished" {
		t.Fatalf("states %v", got)
	}
	if len(res.Masters) != 1 || res.Masters[0].Phase != "synced" {
		t.Fatalf("masters %+v: they only sync in a rollout", res.Masters)
	}
	_, end1 := runTimes(t, f, "agent-01", "rollout-1")
	start2, end2 := runTimes(t, f, "agent-02", "rollout-1")
	start3, _ := runTimes(t, f, "agent-03", "rollout-1")
	if start2.Before(end1) || start3.Before(end2) {
		t.Fatalf("batches overlapped: agent-01 ended %s, agent-02 ran %s-%s, agent-03 started %s", end1, start2, end2, start3)
	}

	f.Repo.CommitModule("v2-canary-fails", f.Files, failOn("agent-01"))
	junit := filepath.Join(t.TempDir(), "junit.xml")
	r = f.CLI(nil, deployArgs("--ref", "v2-canary-fails", "--canary", "1", "--batch", "2", "--junit", junit, "--format", "json")...)
	if r.Code != 1 {
		t.Fatalf("failing canary: want exit 1: %s", r)
	}
	res = decodeResult(t, r)
	if got := states(res); got["agent-01"] != "failed" || got["agent-02"] != "skipped" || got["agent-03"] != "skipped" {
		t.Fatalf("states %v", got)
	}
	for _, n := range res.Nodes[1:] {
		if n.Reason != "not_started" || !strings.Contains(n.Message, "over --max-failures 0") {
			t.Fatalf("%s: %+v", n.Node, n)
		}
	}
	for _, n := range []string{"agent-02", "agent-03"} {
		if got := f.File(n); got != "motd v1 on "+n+"\n" {
			t.Fatalf("%s was touched after the canary failed: %q", n, got)
		}
	}
	for _, c := range parseJUnit(t, junit).Suites[0].Cases {
		if c.Name != "agent-01" && (c.Skipped == nil || !strings.Contains(c.Skipped.Message, "not started")) {
			t.Fatalf("case %+v", c)
		}
	}

	f.Repo.CommitModule("v3-one-fails", f.Files, failOn("agent-01"))
	r = f.CLI(nil, deployArgs("--ref", "v3-one-fails", "--canary", "1", "--max-failures", "1", "--format", "json")...)
	if r.Code != 1 {
		t.Fatalf("--max-failures 1: want exit 1: %s", r)
	}
	if got := states(decodeResult(t, r)); got["agent-01"] != "failed" || got["agent-02"] != "finished" || got["agent-03"] != "finished" {
		t.Fatalf("--max-failures 1: states %v", got)
	}

	if r := f.CLI(nil, deployArgs("--ref", "v1", "--max-failures", "1")...); r.Code != 2 || !strings.Contains(r.Stderr, "give --batch, --canary") {
		t.Fatalf("--max-failures without batches: %s", r)
	}
}
