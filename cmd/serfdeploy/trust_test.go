package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// strictXML fails unless b is well-formed XML to both a strict Go decoder
// and libxml2 (xmllint, what Jenkins-like readers are built on).
// strictResult reads a --result-file strictly: every field known, one
// document.
func strictResult(t *testing.T, path string) orchestrate.Result {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var res orchestrate.Result
	if err := protocol.DecodeStrict(b, &res); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	if res.SchemaVersion != orchestrate.ResultSchema {
		t.Fatalf("%s: schema_version %d", path, res.SchemaVersion)
	}
	return res
}

// TestTwoDeploysInOneBuild: a Jenkins build (one BUILD_TAG) that deploys
// v1 then v2 runs both. Before, the second reused the id, the master
// ignored it as a repeat, and the CLI reported v1's runs as v2's: exit 0
// within a second while every agent still had v1. `run` after `deploy` in
// one build likewise.
func TestTwoDeploysInOneBuild(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	f.Repo.CommitModule("v2", f.Files, "")
	build := []string{"BUILD_TAG=jenkins-release-9"}
	first := f.CLI(build, deployArgs("--ref", "v1", "--tag", "segment=qa", "--format", "json")...)
	second := f.CLI(build, deployArgs("--ref", "v2", "--tag", "segment=qa", "--format", "json")...)
	if first.Code != 0 || second.Code != 0 {
		t.Fatalf("first: %s\nsecond: %s", first, second)
	}
	a, b := decodeResult(t, first), decodeResult(t, second)
	if a.ID == b.ID || !strings.HasPrefix(a.ID, "jenkins-release-9-") || !strings.HasPrefix(b.ID, "jenkins-release-9-") {
		t.Fatalf("ids %q and %q", a.ID, b.ID)
	}
	for _, n := range []string{"agent-01", "agent-02"} {
		if got := f.File(n); got != "motd v2 on "+n+"\n" {
			t.Fatalf("%s after the second deploy of the build: %q", n, got)
		}
	}
	run := f.CLI(build, "run", "--tag", "segment=qa", "--format", "json", "--poll-interval", "500ms")
	if run.Code != 0 || decodeResult(t, run).ID == b.ID {
		t.Fatalf("run after deploy: %s", run)
	}
	// The same deploy started again in the same build (a Jenkins rebuild
	// after an abort) gets the same id and follows the runs made, instead
	// of queueing a second Puppet run on every node.
	again := f.CLI(build, deployArgs("--ref", "v2", "--tag", "segment=qa", "--format", "json")...)
	if again.Code != 0 || decodeResult(t, again).ID != b.ID || !strings.Contains(again.Stderr, "already have a record of "+b.ID) {
		t.Fatalf("the same deploy again in the build: %s", again)
	}
	for _, n := range []string{"agent-01", "agent-02"} {
		if ids := runRecords(t, f, n); len(ids) != 3 {
			t.Fatalf("%s ran %v: the repeated deploy must not run again", n, ids)
		}
	}
}

// TestReusedIDIsRefusedOrFollowed: `--id` already used for motd at v1 is
// refused for v2 (exit 2, naming what it was used for) without a second
// run anywhere; for v1 again it follows the runs that happened (exit 0, no
// new run).
func TestReusedIDIsRefusedOrFollowed(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	f.Repo.CommitModule("v2", f.Files, "")
	if r := f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "rel-1")...); r.Code != 0 {
		t.Fatalf("first deploy: %s", r)
	}
	stamp := func() string {
		info, err := os.Stat(filepath.Join(f.Files, "agent-01.motd"))
		if err != nil {
			t.Fatal(err)
		}
		return info.ModTime().String()
	}
	before := stamp()
	r := f.CLI(nil, deployArgs("--ref", "v2", "--tag", "segment=qa", "--id", "rel-1")...)
	oneLine(t, r, "already used")
	if r.Code != 2 || !strings.Contains(r.Stderr, "deploy of motd at v1") {
		t.Fatalf("reused id for v2: %s", r)
	}
	if got := f.File("agent-01"); got != "motd v1 on agent-01\n" {
		t.Fatalf("agent-01 after a refused deploy: %q", got)
	}
	r = f.CLI(nil, "run", "--tag", "segment=qa", "--id", "rel-1")
	if r.Code != 2 || !strings.Contains(r.Stderr, "already used") {
		t.Fatalf("run with a deploy's id: %s", r)
	}
	r = f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "rel-1", "--format", "json")...)
	if r.Code != 0 || !strings.Contains(r.Stderr, "following those runs") {
		t.Fatalf("the same request again: %s", r)
	}
	if stamp() != before {
		t.Fatal("re-attaching ran Puppet again")
	}
}

// TestHostileAndLongPuppetMessage: a catalog that fails with a 3,000-byte
// message full of escape codes and a CDATA terminator. The node's answer is
// shortened to what serf sends (before, serf dropped it and the CLI waited
// for the timeout: exit 4 instead of 1), and the JUnit file stays valid XML
// to strict parsers (before, an ESC made Jenkins lose every node's result).
func TestHostileAndLongPuppetMessage(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	msg := `\u001b[1;31mboom ]]> <&> \u001b]0;title\u0007` + strings.Repeat("x", 3000)
	f.Repo.CommitModule("v-hostile", f.Files, `  if $trusted['certname'] == 'agent-02' { fail("`+msg+`") }`)
	dir := t.TempDir()
	junit, result, summary := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "result.json"), filepath.Join(dir, "summary.md")
	r := f.CLI(nil, deployArgs("--ref", "v-hostile", "--tag", "segment=qa", "--timeout", "2m",
		"--junit", junit, "--result-file", result, "--summary-file", summary)...)
	if r.Code != 1 {
		t.Fatalf("want exit 1 (a failed catalog), got: %s", r)
	}
	suites := parseJUnit(t, junit)
	if s := suites.Suites[0]; s.Tests != 2 || s.Failures != 1 {
		t.Fatalf("junit counts %+v", s)
	}
	res := strictResult(t, result)
	t.Logf("agent-02 message as the CLI got it (%d bytes): %.100q", len(res.Nodes[1].Message), res.Nodes[1].Message)
	if states(res)["agent-02"] != orchestrate.StateFailed || states(res)["agent-01"] != orchestrate.StateFinished {
		t.Fatalf("states %v", states(res))
	}
	for _, p := range []string{junit, result, summary} {
		b, _ := os.ReadFile(p)
		if bytes.ContainsRune(b, 0x1b) || !utf8.Valid(b) {
			t.Fatalf("%s has an escape code or invalid UTF-8", p)
		}
	}
}

// TestReportsOnEveryExit: a deploy that ends before anything is sent still
// writes every report asked for, saying why, so that Jenkins never
// publishes the previous build's files; and an unwritable report path is
// refused before anything is sent.
func TestReportsOnEveryExit(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	cases := []struct {
		name string
		env  []string
		args []string
		code int
	}{
		{"no match", nil, []string{"--ref", "v1", "--tag", "segment=nope"}, orchestrate.ExitNoTargets},
		{"bad ref name", nil, []string{"--ref", "-x", "--tag", "segment=qa"}, orchestrate.ExitUsage},
		{"agent down", []string{"SERF_RPC_ADDR=" + deadAddr(t)}, []string{"--ref", "v1"}, orchestrate.ExitInfra},
	}
	for _, c := range cases {
		dir := t.TempDir()
		junit, result, summary := filepath.Join(dir, "j.xml"), filepath.Join(dir, "r.json"), filepath.Join(dir, "s.md")
		args := append(deployArgs(c.args...), "--junit", junit, "--result-file", result, "--summary-file", summary)
		var r deployrig.Result
		if c.env != nil {
			r = deployrig.Run(t, bin, c.env, args...)
		} else {
			r = f.CLI(nil, args...)
		}
		if r.Code != c.code {
			t.Fatalf("%s: %s", c.name, r)
		}
		suites := parseJUnit(t, junit)
		if s := suites.Suites[0]; s.Tests != 1 || s.Errors != 1 {
			t.Fatalf("%s: junit %+v", c.name, s)
		}
		res := strictResult(t, result)
		if res.ExitCode != c.code || res.Fired || res.Error == "" {
			t.Fatalf("%s: result %+v", c.name, res)
		}
		if md, err := os.ReadFile(summary); err != nil || !strings.Contains(string(md), res.Error[:20]) {
			t.Fatalf("%s: summary %q %v", c.name, md, err)
		}
	}

	// A report that cannot be written is found before the deploy starts.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--junit", filepath.Join(blocker, "junit.xml"))...)
	oneLine(t, r, "--junit")
	if r.Code != orchestrate.ExitUsage || f.File("agent-01") != "" {
		t.Fatalf("unwritable junit: %s (agent-01 file %q)", r, f.File("agent-01"))
	}
}

// TestEventSizeAtSerfsLimit: the deploy event is sized as serf encodes it.
// The largest event serfdeploy builds is accepted by the real agent; one
// byte more is refused as bad input (exit 2) before firing. Before, the
// raw payload was counted and events of 477-506 bytes were fired, refused
// by the agent and reported as exit 5 (which a pipeline retries).
func TestEventSizeAtSerfsLimit(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	id := strings.Repeat("i", 100)
	regexp := func(pad int) string { return "qa|" + strings.Repeat("x", pad) }
	fits := func(pad int) bool {
		_, err := protocol.EncodeDeploy(&protocol.Deploy{ID: id, Module: "motd", Ref: "v1",
			Tags: map[string]string{"segment": regexp(pad)}, WaitSec: 180, Targets: 2}) // deployArgs: --timeout 3m, --on-running wait; 2 qa targets
		return err == nil
	}
	pad := 0
	for fits(pad + 1) {
		pad++
	}
	r := f.CLI(nil, deployArgs("--ref", "v1", "--id", id, "--tag", "segment="+regexp(pad+1))...)
	if r.Code != orchestrate.ExitUsage || !strings.Contains(r.Stderr, "512") {
		t.Fatalf("one byte over: %s", r)
	}
	if f.File("agent-01") != "" {
		t.Fatal("an event over the limit was fired")
	}
	r = f.CLI(nil, deployArgs("--ref", "v1", "--id", id, "--tag", "segment="+regexp(pad), "--format", "json")...)
	if r.Code != 0 {
		t.Fatalf("at the limit: %s", r)
	}
	var res orchestrate.Result
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || len(res.Nodes) != 2 {
		t.Fatalf("at the limit: %v %s", err, r)
	}
}

// TestConcurrentDeploysOfOneModule: motd v1 to qa and v2 to prod at once,
// into one environment. Whatever order the master installs them in, no
// node is reported finished with code other than its deploy's: each run
// reports the commit it applied (the environment's config_version, set by
// the master), and one that applied the other deploy's code is stale,
// exit 1. Before, both deploys exited 0 while the qa nodes had applied v2.
func TestConcurrentDeploysOfOneModule(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	v2 := f.Repo.CommitModule("v2", f.Files, "")
	v1 := f.Repo.Rev("v1")
	type outcome struct {
		r   deployrig.Result
		ref string
	}
	done := make(chan outcome, 2)
	for _, d := range []struct{ ref, seg string }{{"v1", "qa"}, {"v2", "prod"}} {
		go func(ref, seg string) {
			done <- outcome{f.CLI(nil, deployArgs("--ref", ref, "--tag", "segment="+seg, "--format", "json")...), ref}
		}(d.ref, d.seg)
	}
	for i := 0; i < 2; i++ {
		o := <-done
		res := decodeResult(t, o.r)
		commit := map[string]string{"v1": v1, "v2": v2}[o.ref]
		for _, n := range res.Nodes {
			applied := protocol.ParseCodeVersion(n.ConfigVersion)["motd"]
			switch {
			case applied == "":
				t.Fatalf("%s (%s) reports no applied code: %+v", n.Node, o.ref, n)
			case n.State == orchestrate.StateFinished && !strings.HasPrefix(commit, applied) && !strings.HasPrefix(applied, commit):
				t.Fatalf("%s reported finished for %s but applied %s", n.Node, o.ref, applied)
			case n.State == orchestrate.StateStale && o.r.Code != orchestrate.ExitFailed:
				t.Fatalf("a stale node and exit %d", o.r.Code)
			}
		}
		t.Logf("%s: exit %d, %v", o.ref, o.r.Code, states(res))
	}
}

// TestSIGTERMDuringTheRuns: Jenkins aborts a build with SIGTERM while the
// runs go on. The CLI stops watching, says how many nodes had not finished
// (before, it counted after marking them and said 0), labels them
// interrupted (not timeout), writes its reports and exits 4.
func TestSIGTERMDuringTheRuns(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	f.Repo.CommitModule("v-slow", f.Files, `  exec { 'slow': command => '/bin/sleep 8' }`)
	result := filepath.Join(t.TempDir(), "result.json")
	cmd := exec.Command(bin, deployArgs("--ref", "v-slow", "--tag", "segment=qa", "--result-file", result)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "NO_COLOR=1",
		"SERF_RPC_ADDR=" + f.Cluster.Node("master-01").RPCAddr}
	var stderr bytes.Buffer
	running := &lineWatcher{want: "running", seen: make(chan struct{})}
	cmd.Stderr = io.MultiWriter(&stderr, running)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	<-running.seen // a run has started: the CLI is watching
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != orchestrate.ExitIncomplete {
		t.Fatalf("exit %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted while watching the runs: 2 node(s) had not finished; their runs go on") {
		t.Fatalf("closing line:\n%s", stderr.String())
	}
	res := strictResult(t, result)
	if c := res.Counts(); c[orchestrate.StateInterrupted] != 2 || res.ExitCode != orchestrate.ExitIncomplete {
		t.Fatalf("result %+v", res)
	}
	// The runs went on without the CLI; they end on their own (and must,
	// before the test's directories are removed).
	waitFor(t, 2*time.Minute, func() bool {
		return f.CLI(nil, "status", "--id", res.ID, "--tag", "segment=qa").Code == orchestrate.ExitOK
	})
}

// lineWatcher closes seen once want has been written to it.
type lineWatcher struct {
	buf  bytes.Buffer
	want string
	seen chan struct{}
	done bool
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if !w.done && strings.Contains(w.buf.String(), w.want) {
		w.done = true
		close(w.seen)
	}
	return len(p), nil
}

// TestMasterWithWrongRPCKey: every agent takes an RPC key; a master whose
// node config has another one installs the module but cannot fire the
// trigger. The deploy fails at once (exit 5) naming the setting to fix,
// and the key appears nowhere in the output.
func TestMasterWithWrongRPCKey(t *testing.T) {
	const key, wrong = "agents-rpc-key-4417", "stale-rpc-key-0815"
	f := qaRig(t, deployrig.Options{RPCAuth: key})
	path := filepath.Join(f.Dir, "config", "master-01.yaml")
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), key) {
		t.Fatalf("master config: %v\n%s", err, b)
	}
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(b), key, wrong)), 0o600); err != nil {
		t.Fatal(err)
	}
	r := f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa")...)
	if r.Code != 5 || !strings.Contains(r.Stderr, "serf.rpc_auth in "+path) {
		t.Fatalf("want exit 5 naming serf.rpc_auth in the master's config: %s", r)
	}
	if strings.Contains(r.Stdout+r.Stderr, wrong) || strings.Contains(r.Stdout+r.Stderr, key) {
		t.Fatalf("a key in the output: %s", r)
	}
	if f.File("agent-01") != "" {
		t.Fatal("a run happened without the trigger")
	}
}
