package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/handler"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// puppetOutside runs node's Puppet as the agent daemon or cron would,
// outside serfdeploy: the puppet command of the node's own config (real
// `puppet apply` in the rig), with its Puppet directories, so that Puppet
// writes the node's last_run_summary.yaml. It returns Puppet's exit code.
func puppetOutside(t *testing.T, f *deployrig.Rig, node string) int {
	t.Helper()
	cfg, err := handler.LoadConfig(filepath.Join(f.Dir, "config", node+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	args := make([]string, len(cfg.Puppet.Command))
	for i, a := range cfg.Puppet.Command {
		args[i] = strings.ReplaceAll(a, "{environment}", cfg.Environment)
	}
	start := time.Now()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	var exitErr *exec.ExitError
	code := 0
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		t.Fatalf("%s's puppet: %v\n%s", node, err, out)
	}
	t.Logf("%s: Puppet outside serfdeploy exited %d in %s", node, code, time.Since(start).Round(time.Millisecond))
	return code
}

// setPidfile points node's puppet.pidfile (the agent daemon's) into its own
// Puppet directory, and, when pid > 0, writes pid there.
func setPidfile(t *testing.T, f *deployrig.Rig, node string, pid int) {
	t.Helper()
	path := filepath.Join(f.Dir, "config", node+".yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pidfile := filepath.Join(f.Puppet[node].Dir, "run", "agent.pid")
	conf := strings.Replace(string(b), "puppet:\n", "puppet:\n  pidfile: "+pidfile+"\n", 1)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if pid > 0 {
		if err := os.WriteFile(pidfile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// summary and count see Puppet's runs whoever made them: serfdeploy's on
// agent-01, a failing one run by hand on agent-02, a changing one on
// agent-03 which is then disabled, none on the master; and status shows
// the runs made outside serfdeploy.
func TestSummaryAndCountSeeRunsOutsideSerfdeploy(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	if r := f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "fleet-v1")...); r.Code != 0 {
		t.Fatalf("deploy v1: %s", r)
	}
	// Code that fails on agent-02, installed by a deploy to agent-01 only.
	f.Repo.CommitModule("v2-broken", f.Files, failOn("agent-02"))
	if r := f.CLI(nil, deployArgs("--ref", "v2-broken", "--node", "agent-01", "--id", "fleet-v2")...); r.Code != 0 {
		t.Fatalf("deploy v2-broken to agent-01: %s", r)
	}
	if code := puppetOutside(t, f, "agent-02"); code != 4 && code != 6 {
		t.Fatalf("agent-02's Puppet outside serfdeploy exited %d, want 4 or 6 (failed resources)", code)
	}
	if code := puppetOutside(t, f, "agent-03"); code != 2 {
		t.Fatalf("agent-03's Puppet outside serfdeploy exited %d, want 2 (changes)", code)
	}
	if err := f.Puppet["agent-03"].Disable("kernel upgrade, bob"); err != nil {
		t.Fatal(err)
	}
	// agent-01's daemon runs and is applying a catalog now (its lock's
	// holder is a process called puppet); the others' daemons are stopped.
	release, err := f.Puppet["agent-01"].HoldRunLock()
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	lock, err := os.ReadFile(filepath.Join(f.Puppet["agent-01"].StateDir(), "agent_catalog_run.lock"))
	if err != nil {
		t.Fatal(err)
	}
	holder, _ := strconv.Atoi(strings.TrimSpace(string(lock)))
	for _, n := range []string{"master-01", "agent-01", "agent-02", "agent-03"} {
		setPidfile(t, f, n, map[string]int{"agent-01": holder}[n])
	}

	// summary, JSON.
	r := f.CLI(nil, "summary", "--format", "json")
	mustMatch(t, "summary", r, 0)
	var sum orchestrate.SummaryReport
	if err := json.Unmarshal([]byte(r.Stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Total != 4 || sum.Answered != 4 || sum.WithFigures != 3 || sum.BySerfdeploy != 1 || sum.ByOther != 2 || sum.ExitCode != 0 {
		t.Fatalf("summary counts: %s", r.Stdout)
	}
	if sum.Resources.Failed.Max != 1 || sum.Resources.Failed.Nodes != 3 || sum.Resources.Total.Min < 7 ||
		sum.ConfigRetrieval.Max <= 0 || sum.RunTime.Max <= 0 || sum.LastRunAge.Max > 600 || len(sum.Oldest) != 3 {
		t.Fatalf("summary figures: %s", r.Stdout)
	}
	notes := func(ns []orchestrate.NodeNote) string {
		var out []string
		for _, n := range ns {
			out = append(out, n.Node+": "+n.Detail)
		}
		return strings.Join(out, "\n")
	}
	for what, c := range map[string]struct{ got, want string }{
		"failed":     {notes(sum.Failed), "agent-02: 1 of "},
		"disabled":   {notes(sum.Disabled), "agent-03: puppet agent is disabled: kernel upgrade, bob"},
		"running":    {notes(sum.Running), "agent-01: outside serfdeploy"},
		"unreadable": {notes(sum.Unreadable), "master-01: no " + f.Puppet["master-01"].SummaryFile()},
		"oldest":     {notes(sum.Oldest), "agent-01: by serfdeploy"},
	} {
		if !strings.Contains(c.got, c.want) {
			t.Errorf("summary's %s: %q, want %q", what, c.got, c.want)
		}
	}
	if !strings.Contains(notes(sum.Failed), "outside serfdeploy") || len(sum.Failed) != 1 || len(sum.NoAnswer) != 0 {
		t.Errorf("summary's failed and silent nodes: %s", r.Stdout)
	}

	// summary, text.
	r = f.CLI(nil, "summary")
	for _, want := range []string{"4 node(s): 4 answered, 3 with Puppet's figures; last runs: 1 by serfdeploy, 2 outside serfdeploy",
		"last run age", "config retrieval", "out of sync", "last run failed (1):", "agent-02", "disabled (1):", "kernel upgrade, bob",
		"running now (1):", "no Puppet figures (1):", "master-01"} {
		if r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Fatalf("summary lacks %q: %s", want, r)
		}
	}

	// count, JSON and text.
	r = f.CLI(nil, "count", "--format", "json")
	mustMatch(t, "count", r, 0)
	var cnt orchestrate.CountReport
	if err := json.Unmarshal([]byte(r.Stdout), &cnt); err != nil {
		t.Fatal(err)
	}
	if cnt.Total != 4 || cnt.Running != 1 || cnt.Idle != 2 || cnt.Disabled != 1 || cnt.NoAnswer != 0 ||
		cnt.Daemon != (orchestrate.DaemonCount{Running: 1, Stopped: 3}) || cnt.ExitCode != 0 {
		t.Fatalf("count: %s", r.Stdout)
	}
	r = f.CLI(nil, "count", "--tag", "segment=qa")
	for _, want := range []string{"2 node(s) matching --tag segment=qa", "running    1  agent-01", "idle       1  agent-02", "agent daemon: 1 running, 1 stopped"} {
		if r.Code != 0 || !strings.Contains(r.Stdout, want) {
			t.Fatalf("count lacks %q: %s", want, r)
		}
	}

	// status: the runs made outside serfdeploy, marked so.
	r = f.CLI(nil, "status")
	lines := map[string]string{}
	for _, l := range strings.Split(r.Stdout, "\n") {
		if name, _, ok := strings.Cut(l, " "); ok {
			lines[name] = l
		}
	}
	for node, wants := range map[string][]string{
		"agent-01":  {"running (outside serfdeploy)", "fleet-v2", "finished"},
		"agent-02":  {"(outside serfdeploy)", "failed", "resources failed", "serfdeploy's last: fleet-v1 finished"},
		"agent-03":  {"disabled", "(outside serfdeploy)", "finished", "kernel upgrade, bob"},
		"master-01": {"Puppet's summary: no "},
	} {
		for _, want := range wants {
			if r.Code != 0 || !strings.Contains(lines[node], want) {
				t.Errorf("status's %s line lacks %q: %q\n%s", node, want, lines[node], r)
			}
		}
	}

	// Nothing matched: 3. A node whose handler cannot answer: 4.
	if r := f.CLI(nil, "summary", "--tag", "segment=nothing"); r.Code != 3 {
		t.Fatalf("summary of no node: %s", r)
	}
	if err := os.WriteFile(filepath.Join(f.Dir, "config", "master-01.yaml"), []byte("role: [broken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = f.CLI(nil, "count", "--query-timeout", "2s")
	if r.Code != 4 || !strings.Contains(r.Stdout, "no answer  1  master-01") {
		t.Fatalf("count with a silent node: %s", r)
	}
}
