package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/junitcheck"
)

// qaRig: one master and three agents, the article's topology.
func qaRig(t *testing.T, opts deployrig.Options) *deployrig.Rig {
	opts.Bin = bin
	opts.Nodes = []deployrig.Node{
		{Name: "master-01", Master: true},
		{Name: "agent-01", Tags: map[string]string{"segment": "qa"}},
		{Name: "agent-02", Tags: map[string]string{"segment": "qa"}},
		{Name: "agent-03", Tags: map[string]string{"segment": "prod"}},
	}
	return deployrig.Start(t, opts)
}

var fast = []string{"--poll-interval", "500ms", "--timeout", "3m"}

func deployArgs(extra ...string) []string {
	return append(append([]string{"deploy", "--module", "motd"}, fast...), extra...)
}

func decodeResult(t *testing.T, r deployrig.Result) orchestrate.Result {
	t.Helper()
	var res orchestrate.Result
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
		t.Fatalf("--format json output does not decode: %v\n%s", err, r)
	}
	return res
}

func states(res orchestrate.Result) map[string]string {
	m := map[string]string{}
	for _, n := range res.Nodes {
		m[n.Node] = n.State
	}
	return m
}

func TestDeployToQA(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	r := f.CLI([]string{"BUILD_TAG=jenkins-release-7", "BUILD_URL=https://ci.example/job/release/7/", "JOB_NAME=release"},
		deployArgs("--ref", "v1", "--tag", "segment=qa", "--format", "json")...)
	if r.Code != 0 {
		t.Fatalf("deploy: %s", r)
	}
	res := decodeResult(t, r)
	if !strings.HasPrefix(res.ID, "jenkins-release-7-") || res.ExitCode != 0 || res.Build == nil || res.Build.Job != "release" {
		t.Fatalf("result header %+v", res)
	}
	if got := states(res); len(got) != 2 || got["agent-01"] != "finished" || got["agent-02"] != "finished" {
		t.Fatalf("nodes %v", got)
	}
	for _, n := range res.Nodes {
		if n.ExitCode == nil || *n.ExitCode != 2 || n.Changed != 1 || n.Total == 0 {
			t.Fatalf("%s: %+v", n.Node, n)
		}
	}
	for _, n := range []string{"agent-01", "agent-02"} {
		if got := f.File(n); got != "motd v1 on "+n+"\n" {
			t.Fatalf("%s file %q", n, got)
		}
	}
	if got := f.File("agent-03"); got != "" {
		t.Fatalf("the prod node was touched: %q", got)
	}
	// Jenkins' console: timestamped lines per state change, no escapes.
	if !strings.Contains(r.Stderr, "agent-01") || !strings.Contains(r.Stderr, "finished") || strings.Contains(r.Stderr, "\x1b[") {
		t.Fatalf("progress lines:\n%s", r.Stderr)
	}
	if line := strings.SplitN(r.Stderr, "\n", 2)[0]; !strings.Contains(line, "deploy id jenkins-release-7") {
		t.Fatalf("the deploy id is not printed first: %q", line)
	}

	// v2 over v1, text summary this time.
	f.Repo.CommitModule("v2", f.Files, "")
	r = f.CLI(nil, deployArgs("--ref", "v2", "--tag", "segment=qa", "--id", "second")...)
	if r.Code != 0 || !strings.Contains(r.Stdout, "every target finished without failures") {
		t.Fatalf("deploy v2: %s", r)
	}
	if got := f.File("agent-02"); got != "motd v2 on agent-02\n" {
		t.Fatalf("agent-02 after v2: %q", got)
	}

	// status: idle now, last run is "second".
	r = f.CLI(nil, "status", "--tag", "segment=qa", "--format", "json")
	if r.Code != 0 {
		t.Fatalf("status: %s", r)
	}
	var rep orchestrate.StatusReport
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Nodes) != 2 || rep.Nodes[0].Status.Running != "" || rep.Nodes[0].Status.Last == nil || rep.Nodes[0].Status.Last.ID != "second" {
		t.Fatalf("status %+v", rep)
	}
	if r := f.CLI(nil, "status", "--id", "no-such-deploy"); r.Code != 3 || !strings.Contains(r.Stderr, "no matching node has a record of deploy no-such-deploy") {
		t.Fatalf("status of an unknown id: %s", r)
	}
	r = f.CLI(nil, "status", "--id", res.ID, "--node", "master-01")
	if r.Code != 0 || !strings.Contains(r.Stdout, "sync triggered") {
		t.Fatalf("status of the master: %s", r)
	}
	// The whole cluster: agent-03 (prod) was no target and has no record;
	// a deploy that went well is exit 0 (it was 4).
	if r = f.CLI(nil, "status", "--id", res.ID); r.Code != 0 {
		t.Fatalf("status --id of the whole cluster: %s", r)
	}
}

// failOn is module code that fails on one node only.
func failOn(node string) string {
	return `  if $trusted['certname'] == '` + node + `' {
    exec { 'break-on-` + node + `': command => '/bin/false' }
  }`
}

func TestDeployFailingOnOneNode(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	f.Repo.CommitModule("v2-broken", f.Files, failOn("agent-02"))
	dir := t.TempDir()
	junitPath := filepath.Join(dir, "junit.xml")
	mdPath := filepath.Join(dir, "summary.md")
	r := f.CLI(nil, deployArgs("--ref", "v2-broken", "--tag", "segment=qa", "--junit", junitPath, "--summary-file", mdPath)...)
	if r.Code != 1 {
		t.Fatalf("want exit 1: %s", r)
	}
	var line string
	for _, l := range strings.Split(r.Stdout, "\n") {
		if strings.HasPrefix(l, "agent-02 ") {
			line = l
		}
	}
	if !strings.Contains(line, "failed") || !strings.Contains(line, "resources_failed") {
		t.Fatalf("summary line for agent-02: %q\n%s", line, r.Stdout)
	}
	if fields := strings.Fields(line); len(fields) < 6 || fields[4] != "1" {
		t.Fatalf("agent-02's failed count is not 1: %q", line)
	}
	if !strings.Contains(r.Stdout, "Exec[break-on-agent-02]") {
		t.Fatalf("the failed resource is not named:\n%s", r.Stdout)
	}
	if f.File("agent-01") != "motd v2-broken on agent-01\n" {
		t.Fatalf("agent-01 should have applied: %q", f.File("agent-01"))
	}
	suites := parseJUnit(t, junitPath)
	s := suites.Suites[0]
	if s.Tests != 2 || s.Failures != 1 || s.Errors != 0 {
		t.Fatalf("junit counts %+v", s)
	}
	md, _ := os.ReadFile(mdPath)
	if !strings.Contains(string(md), "| agent-02 | failed |") {
		t.Fatalf("markdown:\n%s", md)
	}
}

func TestDeployNodeLostDuringRun(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	f.Repo.CommitModule("v2-slow", f.Files, `  if $trusted['certname'] == 'agent-02' {
    exec { 'slow': command => '/bin/sleep 30' }
  }`)
	go func() {
		// Kill agent-02's serf agent once its run is under way.
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			if b, _ := os.ReadFile(filepath.Join(f.StateDir("agent-02"), "active")); len(b) > 0 {
				time.Sleep(2 * time.Second)
				f.Cluster.Node("agent-02").Kill()
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	start := time.Now()
	junitPath := filepath.Join(t.TempDir(), "junit.xml")
	r := f.CLI(nil, deployArgs("--ref", "v2-slow", "--tag", "segment=qa", "--format", "json", "--junit", junitPath)...)
	took := time.Since(start)
	if r.Code != 4 {
		t.Fatalf("want exit 4: %s", r)
	}
	res := decodeResult(t, r)
	if got := states(res); got["agent-02"] != "lost" || got["agent-01"] != "finished" {
		t.Fatalf("states %v", got)
	}
	t.Logf("deploy with a lost node returned after %s (its run takes 30s, timeout 3m)", took.Round(time.Second))
	runRecord := filepath.Join(f.StateDir("agent-02"), "runs", res.ID, "run.json")
	var rec struct{ Phase string }
	if b, err := os.ReadFile(runRecord); err != nil || json.Unmarshal(b, &rec) != nil || rec.Phase != "running" {
		t.Fatalf("when the deploy ended agent-02's run was %q: the node must be reported lost from serf's failure detection, not after its run", rec.Phase)
	}
	s := parseJUnit(t, junitPath).Suites[0]
	if s.Tests != 2 || s.Failures != 0 || s.Errors != 1 || s.Cases[1].Name != "agent-02" || s.Cases[1].Error == nil || !strings.Contains(s.Cases[1].Error.Message, "lost") {
		t.Fatalf("junit for a lost node: %+v", s)
	}
	// The run is a detached worker in its own session: it outlives the
	// serf agent and finishes.
	waitFor(t, 2*time.Minute, func() bool {
		b, _ := os.ReadFile(runRecord)
		var rec struct{ Phase string }
		return json.Unmarshal(b, &rec) == nil && rec.Phase == "finished"
	})
}

func TestDeployTimeout(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	f.Repo.CommitModule("v2-hang", f.Files, `  if $trusted['certname'] == 'agent-01' {
    exec { 'hang': command => '/bin/sleep 120' }
  }`)
	r := f.CLI(nil, "deploy", "--module", "motd", "--ref", "v2-hang", "--tag", "segment=qa", "--poll-interval", "500ms", "--timeout", "25s")
	if r.Code != 4 {
		t.Fatalf("want exit 4: %s", r)
	}
	if !strings.Contains(r.Stdout, "agent-01") || !strings.Contains(r.Stdout, "timeout") {
		t.Fatalf("summary does not name the node that timed out:\n%s", r.Stdout)
	}
}

func TestDeployErrors(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	r := f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=staging")...)
	if r.Code != 3 || !strings.Contains(r.Stderr, "segment=staging") {
		t.Fatalf("no match: %s", r)
	}
	r = f.CLI(nil, deployArgs("--ref", "no-such-ref", "--tag", "segment=qa")...)
	// No retry finds a ref that does not exist: bad input, exit 2.
	if r.Code != 2 || !strings.Contains(r.Stderr+r.Stdout, "no-such-ref") || !strings.Contains(strings.ToLower(r.Stderr+r.Stdout), "couldn't find remote ref") {
		t.Fatalf("bad ref: %s", r)
	}
	if f.File("agent-01") != "" {
		t.Fatal("an agent ran after a failed code sync")
	}
	args := deployArgs("--ref", "v1")
	for i := 0; i < 40; i++ {
		args = append(args, "--node", "agent-01")
	}
	r = f.CLI(nil, args...)
	if r.Code != 2 || !strings.Contains(r.Stderr, "512") {
		t.Fatalf("oversize payload: %s", r)
	}
	r = f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--environment", "staging")...)
	if r.Code != 5 || !strings.Contains(r.Stderr, "environment staging does not exist on master master-01") {
		t.Fatalf("missing environment: %s", r)
	}
	r = f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--master-tag", "role=nomaster")...)
	if r.Code != 5 || !strings.Contains(r.Stderr, "master") {
		t.Fatalf("no master: %s", r)
	}
}

func TestRunAndBusy(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	r := f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa")...)
	if r.Code != 0 {
		t.Fatalf("deploy: %s", r)
	}
	// Ad-hoc run on every non-master node, prod included.
	r = f.CLI(nil, append([]string{"run", "--format", "json"}, fast...)...)
	if r.Code != 0 {
		t.Fatalf("run: %s", r)
	}
	res := decodeResult(t, r)
	if got := states(res); len(got) != 3 || got["agent-03"] != "finished" {
		t.Fatalf("run states %v", got)
	}
	if f.File("agent-03") != "motd v1 on agent-03\n" {
		t.Fatalf("run on agent-03 did not apply the installed module: %q", f.File("agent-03"))
	}

	// A run while another one is in progress answers busy.
	f.Repo.CommitModule("v3-slow", f.Files, `  exec { 'slow': command => '/bin/sleep 15' }`)
	done := make(chan deployrig.Result)
	go func() {
		done <- f.CLI(nil, deployArgs("--ref", "v3-slow", "--node", "agent-01", "--id", "slow-one")...)
	}()
	waitFile(t, filepath.Join(f.StateDir("agent-01"), "active"))
	r = f.CLI(nil, append([]string{"run", "--node", "agent-01", "--format", "json", "--on-running", "fail"}, fast...)...)
	if r.Code != 1 {
		t.Fatalf("run during a run: %s", r)
	}
	res = decodeResult(t, r)
	if res.Nodes[0].State != "busy" || !strings.Contains(res.Nodes[0].Message, "slow-one") {
		t.Fatalf("busy node %+v", res.Nodes[0])
	}
	st := f.CLI(nil, "status", "--node", "agent-01")
	if !strings.Contains(st.Stdout, "running slow-one") {
		t.Fatalf("status during the run: %s", st)
	}
	// By default (--on-running wait) the run queues behind the other and
	// starts when it ends: never two Puppet runs at once.
	r = f.CLI(nil, append([]string{"run", "--node", "agent-01", "--id", "queued-one", "--format", "json"}, fast...)...)
	if r.Code != 0 || states(decodeResult(t, r))["agent-01"] != "finished" {
		t.Fatalf("queued run: %s", r)
	}
	if !strings.Contains(r.Stderr, "queued behind it") {
		t.Fatalf("the queued run was not reported queued:\n%s", r.Stderr)
	}
	if first := <-done; first.Code != 0 {
		t.Fatalf("the slow deploy: %s", first)
	}
	var slow, queued struct{ Started, Finished time.Time }
	for id, rec := range map[string]any{"slow-one": &slow, "queued-one": &queued} {
		b, err := os.ReadFile(filepath.Join(f.StateDir("agent-01"), "runs", id, "run.json"))
		if err != nil || json.Unmarshal(b, rec) != nil {
			t.Fatalf("record of %s: %v %s", id, err, b)
		}
	}
	if queued.Started.Before(slow.Finished) {
		t.Fatalf("the queued run started at %s, before the other ended at %s", queued.Started, slow.Finished)
	}
	// The refused run is not the node's last run: the last one Puppet made
	// is (before, the newest record won, hiding the real run).
	st = f.CLI(nil, "status", "--node", "agent-01", "--format", "json")
	var rep orchestrate.StatusReport
	if err := json.Unmarshal([]byte(st.Stdout), &rep); err != nil || len(rep.Nodes) != 1 || rep.Nodes[0].Status.Last == nil {
		t.Fatalf("status after the busy refusal: %v %s", err, st)
	}
	if last := rep.Nodes[0].Status.Last; last.ID != "queued-one" || last.Phase != "finished" {
		t.Fatalf("last run after a busy refusal: %+v", last)
	}
}

func waitFor(t *testing.T, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", path)
}

func parseJUnit(t *testing.T, path string) *junitcheck.Doc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := junitcheck.Parse(b)
	if err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return doc
}

func TestDeployToAnotherEnvironment(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	staging := filepath.Join(f.CodeDir, "environments", "staging")
	for _, d := range []string{"modules", "manifests"} {
		if err := os.MkdirAll(filepath.Join(staging, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(staging, "manifests", "site.pp"), []byte("include motd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.Repo.CommitModule("v2-staging", f.Files, "")
	r := f.CLI(nil, deployArgs("--ref", "v2-staging", "--tag", "segment=qa", "--environment", "staging", "--format", "json")...)
	if r.Code != 0 {
		t.Fatalf("deploy to staging: %s", r)
	}
	if res := decodeResult(t, r); res.Environment != "staging" {
		t.Fatalf("result environment %q", res.Environment)
	}
	if _, err := os.Lstat(filepath.Join(f.ModulePath("staging"), "motd")); err != nil {
		t.Fatalf("not installed in staging: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(f.ModulePath("production"), "motd")); err == nil {
		t.Fatal("installed in production too")
	}
	if f.File("agent-01") != "motd v2-staging on agent-01\n" {
		t.Fatalf("agent-01 did not apply staging's code: %q", f.File("agent-01"))
	}
}
