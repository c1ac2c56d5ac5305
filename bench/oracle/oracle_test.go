package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// TestOracleHandful plays a few fixed one-fault scenarios on a real
// cluster (no Loki, to stay well under a minute), so that CI exercises the
// harness end to end: a failing run, a concurrent deploy of the module at
// another ref, a target SIGKILLed mid-run. It fails on any false green and
// logs every other disagreement (the soak, docs/oracle.md, is where they
// are counted).
func TestOracleHandful(t *testing.T) {
	if testing.Short() {
		t.Skip("real serf agents: not in -short")
	}
	bin, err := deployrig.BuildBinary(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{
		// Scenario 1 of seeds 8, 3 and 5 with this pool and one fault:
		// fail agent-02 (exit 1); concurrent deploy at v2; kill-target
		// agent-03 mid-run (see TestDrawIsAPureFunction).
		Cases:     []caseKey{{8, 1}, {3, 1}, {5, 1}},
		Agents:    4,
		MaxFaults: 1,
		Pool:      testPool,
		Loki:      "off",
		Bin:       bin,
		Evidence:  filepath.Join(t.TempDir(), "evidence"),
	}
	rep, err := campaign(cfg, testWriter{t})
	if rep != nil {
		t.Log(rep.render())
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Outcomes) != len(cfg.Cases) {
		t.Fatalf("%d scenarios played, want %d", len(rep.Outcomes), len(cfg.Cases))
	}
	for _, o := range rep.Outcomes {
		if o.Err != "" {
			t.Errorf("seed %d scenario %d: harness error: %s", o.S.Seed, o.S.Num, o.Err)
		}
		if len(o.Verdicts) == 0 {
			t.Errorf("seed %d scenario %d: not judged", o.S.Seed, o.S.Num)
		}
		for _, v := range o.Verdicts {
			if v.Kind == kindFalseGreen {
				t.Errorf("FALSE GREEN: seed %d scenario %d deploy %s: %s; faults: %s; %s",
					o.S.Seed, o.S.Num, v.Label, v.Why, o.S.faultList(), v.truthLine())
			}
			if v.Mismatch != "" {
				t.Errorf("MISMATCH: seed %d scenario %d deploy %s: %s; faults: %s",
					o.S.Seed, o.S.Num, v.Label, v.Mismatch, o.S.faultList())
			}
		}
	}
	if t.Failed() && rep.Evidence != "" {
		// Keep it past the test's temporary directory.
		keep, _ := os.MkdirTemp("", "oracle-evidence-")
		os.Rename(rep.Evidence, filepath.Join(keep, "evidence"))
		t.Logf("evidence kept in %s", keep)
	}
}

var testPool = []string{fFail, fHostile, fKill, fLeave, fKillWorker, fJoin, fConcurrent}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}

// TestDrawIsAPureFunction: a scenario is a function of (seed, number,
// agents, pool, max faults), which is what makes `-only N` a replay; and
// the draws the CI test relies on.
func TestDrawIsAPureFunction(t *testing.T) {
	agents := []string{"agent-01", "agent-02", "agent-03", "agent-04"}
	for num := 1; num <= 50; num++ {
		a, b := draw(7, num, agents, allFaults, 3), draw(7, num, agents, allFaults, 3)
		if a.faultList() != b.faultList() || a.FilterA != b.FilterA || a.RefA != b.RefA || a.Timeout != b.Timeout {
			t.Fatalf("scenario %d drawn twice: %q vs %q", num, a.faultList(), b.faultList())
		}
		if len(a.Faults) < 1 || len(a.Faults) > 3 {
			t.Fatalf("scenario %d: %d faults", num, len(a.Faults))
		}
		victims := map[string]bool{}
		for _, f := range a.Faults {
			if nodeFault(f.Kind) {
				if victims[f.Victim] {
					t.Fatalf("scenario %d: %s is the victim of two faults: %s", num, f.Victim, a.faultList())
				}
				victims[f.Victim] = true
			}
		}
		if a.IDB != "" && len(a.B) == 0 {
			t.Fatalf("scenario %d: a concurrent deploy without targets", num)
		}
	}
	want := map[uint64]string{8: "fail agent-02 (exit 1)", 3: "concurrent (v2, +0.9s)", 5: "kill-target agent-03 (mid-run, +1.1s)"}
	for seed, w := range want {
		if got := draw(seed, 1, agents, testPool, 1).faultList(); got != w {
			t.Errorf("seed %d scenario 1: %q, want %q", seed, got, w)
		}
	}
}

func TestCombine(t *testing.T) {
	for _, c := range []struct {
		sets []codeSet
		want codeSet
	}{
		{nil, codes(0)},
		{[]codeSet{codes(0), codes(0)}, codes(0)},
		{[]codeSet{codes(0), codes(1)}, codes(1)},
		{[]codeSet{codes(4), codes(0)}, codes(4)},
		{[]codeSet{codes(4), codes(1)}, codes(1)},
		{[]codeSet{codes(0, 4), codes(0)}, codes(0, 4)},
		{[]codeSet{codes(0, 4), codes(1)}, codes(1)},
		{[]codeSet{codes(1, 4), codes(0)}, codes(1, 4)},
	} {
		if got := combine(c.sets); got != c.want {
			t.Errorf("combine(%v) = %v, want %v", c.sets, got, c.want)
		}
	}
}

// TestJudge checks the expectation rules of docs/oracle.md on made-up
// ground truth.
func TestJudge(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	exited := t0.Add(10 * time.Second)
	ran := func(exit int, commit string) []*run {
		return []*run{{Start: t0, Ended: true, End: t0.Add(2 * time.Second), Exit: exit, Commit: commit}}
	}
	result := func(states map[string]string) *orchestrate.Result {
		r := &orchestrate.Result{}
		for n, s := range states {
			r.Nodes = append(r.Nodes, orchestrate.NodeResult{Node: n, State: s})
		}
		return r
	}
	for _, c := range []struct {
		name   string
		in     judgeInput
		kind   string
		issues int
	}{
		{"all ok, exit 0", judgeInput{Code: 0, Runs: map[string][]*run{"a": ran(2, "c1"), "b": ran(0, "c1")},
			Result: result(map[string]string{"a": "finished", "b": "finished"})}, "", 0},
		{"a failed run, exit 0", judgeInput{Code: 0, Runs: map[string][]*run{"a": ran(1, "c1"), "b": ran(0, "c1")},
			Result: result(map[string]string{"a": "finished", "b": "finished"})}, kindFalseGreen, 1},
		{"a failed run, exit 1", judgeInput{Code: 1, Runs: map[string][]*run{"a": ran(1, "c1"), "b": ran(0, "c1")},
			Result: result(map[string]string{"a": "failed", "b": "finished"})}, "", 0},
		{"all ok, exit 1", judgeInput{Code: 1, Runs: map[string][]*run{"a": ran(2, "c1"), "b": ran(0, "c1")},
			Result: result(map[string]string{"a": "failed", "b": "finished"})}, kindFalseRed, 1},
		{"other code applied, exit 0", judgeInput{Code: 0, Runs: map[string][]*run{"a": ran(2, "c2"), "b": ran(0, "c1")},
			Result: result(map[string]string{"a": "finished", "b": "finished"})}, kindFalseGreen, 1},
		{"never ran, exit 4", judgeInput{Code: 4, Runs: map[string][]*run{"b": ran(0, "c1")},
			Result: result(map[string]string{"a": "missed", "b": "finished"})}, "", 0},
		{"a joiner the trigger was sent to never answered, exit 4", judgeInput{Code: 4, MayJoin: []string{"late-01"},
			Runs: map[string][]*run{"a": ran(0, "c1"), "b": ran(0, "c1")},
			Result: func() *orchestrate.Result {
				r := result(map[string]string{"a": "finished", "b": "finished"})
				r.Masters = []orchestrate.MasterResult{{Node: "m", Listed: 3, Reached: 2}}
				return r
			}()}, "", 0},
		{"every trigger answered, exit 4", judgeInput{Code: 4, MayJoin: []string{"late-01"},
			Runs: map[string][]*run{"a": ran(0, "c1"), "b": ran(0, "c1")},
			Result: func() *orchestrate.Result {
				r := result(map[string]string{"a": "finished", "b": "finished"})
				r.Masters = []orchestrate.MasterResult{{Node: "m", Listed: 2, Reached: 2}}
				return r
			}()}, kindWrongCode, 0},
		{"never ran, exit 1", judgeInput{Code: 1, Runs: map[string][]*run{"b": ran(0, "c1")},
			Result: result(map[string]string{"a": "failed", "b": "finished"})}, kindWrongCode, 0},
		{"killed with its agent, exit 4", judgeInput{Code: 4, Unobservable: map[string]string{"a": fKill},
			Runs:   map[string][]*run{"a": {{Start: t0}}, "b": ran(0, "c1")},
			Result: result(map[string]string{"a": "lost", "b": "finished"})}, "", 0},
		{"left, its run ok, exit 4", judgeInput{Code: 4, Unobservable: map[string]string{"a": fLeave},
			Runs:   map[string][]*run{"a": ran(0, "c1"), "b": ran(0, "c1")},
			Result: result(map[string]string{"a": "lost", "b": "finished"})}, "", 0},
		{"hung past the CLI, exit 0", judgeInput{Code: 0,
			Runs:   map[string][]*run{"a": {{Start: t0, Ended: true, End: exited.Add(5 * time.Second), Commit: "c1"}}, "b": ran(0, "c1")},
			Result: result(map[string]string{"a": "finished", "b": "finished"})}, kindFalseGreen, 1},
		{"a joiner that ran and failed, unseen, exit 0", judgeInput{Code: 0, MayJoin: []string{"late"},
			Runs:   map[string][]*run{"late": ran(1, "c1"), "b": ran(0, "c1")},
			Result: result(map[string]string{"b": "finished"})}, kindFalseGreen, 1},
		{"killed, absent from a re-attach, exit 4", judgeInput{Code: 4, Unobservable: map[string]string{"a": fKill},
			Runs:   map[string][]*run{"a": {{Start: t0}}, "b": ran(0, "c1")},
			Result: result(map[string]string{"b": "finished"})}, "", 0},
		{"killed, absent from a re-attach, exit 0", judgeInput{Code: 0, Unobservable: map[string]string{"a": fKill},
			Runs:   map[string][]*run{"a": {{Start: t0}}, "b": ran(0, "c1")},
			Result: result(map[string]string{"b": "finished"})}, kindFalseGreen, 0},
		{"hung past the deadline, the CLI waited longer for the logging service, exit 4", judgeInput{Code: 4, Deadline: t0.Add(5 * time.Second),
			Runs:   map[string][]*run{"a": {{Start: t0, Ended: true, End: t0.Add(9 * time.Second), Commit: "c1"}}, "b": ran(0, "c1")},
			Result: result(map[string]string{"a": "timeout", "b": "finished"})}, "", 0},
		{"ended just before the deadline, reported timeout, exit 4", judgeInput{Code: 4, Deadline: t0.Add(3 * time.Second),
			Runs:   map[string][]*run{"a": ran(0, "c1"), "b": ran(0, "c1")},
			Result: result(map[string]string{"a": "timeout", "b": "finished"})}, "", 0},
		{"left, reported timeout, exit 4", judgeInput{Code: 4, Unobservable: map[string]string{"a": fLeave},
			Runs:   map[string][]*run{"a": ran(0, "c1"), "b": ran(0, "c1")},
			Result: result(map[string]string{"a": "timeout", "b": "finished"})}, "", 0},
		{"a joiner that never ran, unlisted", judgeInput{Code: 0, MayJoin: []string{"late"},
			Runs: map[string][]*run{"b": ran(0, "c1")}, Result: result(map[string]string{"b": "finished"})}, "", 0},
		{"exit 5 after the CLI's agent went away", judgeInput{Code: 5, Infra: "restarted",
			Runs: map[string][]*run{"a": ran(0, "c1"), "b": ran(0, "c1")}, Result: result(map[string]string{"a": "running", "b": "finished"})}, "", 0},
		{"hung, still running when judged, exit 4", judgeInput{Code: 4, Deadline: t0.Add(5 * time.Second), Hung: map[string]bool{"a": true},
			Runs:   map[string][]*run{"a": {{Start: t0}}, "b": ran(0, "c1")},
			Result: result(map[string]string{"a": "timeout", "b": "finished"})}, "", 0},
		{"watch: no node ran the id, exit 3", judgeInput{Label: "A/watch", Code: 3, Runs: map[string][]*run{}}, "", 0},
		{"watch: a node ran the id, exit 3", judgeInput{Label: "A/watch", Code: 3, Runs: map[string][]*run{"b": ran(0, "c1")}}, kindWrongCode, 0},
		{"exit 5 for nothing", judgeInput{Code: 5,
			Runs: map[string][]*run{"a": ran(0, "c1"), "b": ran(0, "c1")}, Result: result(map[string]string{"a": "finished", "b": "finished"})}, kindWrongCode, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			in.Commit, in.Exited = "c1", exited
			if in.Label == "" {
				in.Label = "A"
			}
			if len(in.Intended) == 0 {
				in.Intended = []string{"b"}
				if c.in.MayJoin == nil {
					in.Intended = []string{"a", "b"}
				}
			}
			// A --result-file that agrees with the exit code.
			in.File = &orchestrate.Result{ExitCode: in.Code}
			v := judge(in)
			if v.Kind != c.kind || len(v.issues()) != c.issues {
				t.Fatalf("kind %q with %d per-node issue(s), want %q with %d: want %s; %s", v.Kind, len(v.issues()), c.kind, c.issues, v.Want, v.truthLine())
			}
			if v.Mismatch != "" {
				t.Fatalf("a --result-file that agrees is a mismatch: %s", v.Mismatch)
			}
		})
	}
}

// TestJudgeResultFile: the --result-file's exit_code must be the process's
// exit code, whatever the verdict; a missing or unreadable file is a
// mismatch too.
func TestJudgeResultFile(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	ok := []*run{{Start: t0, Ended: true, End: t0.Add(2 * time.Second), Exit: 0, Commit: "c1"}}
	failed := []*run{{Start: t0, Ended: true, End: t0.Add(2 * time.Second), Exit: 1, Commit: "c1"}}
	file := func(code int) *orchestrate.Result { return &orchestrate.Result{ExitCode: code} }
	for _, c := range []struct {
		name     string
		code     int
		file     *orchestrate.Result
		fileErr  string
		runs     []*run // target a's; b ran fine
		kind     string
		mismatch bool
	}{
		{"agrees, exit 0", 0, file(0), "", ok, "", false},
		{"agrees, exit 1", 1, file(1), "", failed, "", false},
		{"file says 0, exit 1", 1, file(0), "", failed, "", true},
		{"file says 1, exit 0", 0, file(1), "", ok, "", true},
		{"file says 4, exit 5 (watch would not be told to re-attach)", 5, file(4), "", ok, kindWrongCode, true},
		{"file missing", 0, nil, "open A.json: no such file or directory", ok, "", true},
		{"file not JSON", 1, nil, "A.json: not a JSON object", failed, "", true},
		{"no file read at all", 0, nil, "", ok, "", true},
		{"a false green whose file agrees", 0, file(0), "", failed, kindFalseGreen, false},
		{"a false green whose file says 1", 0, file(1), "", failed, kindFalseGreen, true},
		{"the CLI killed by the oracle: no exit code to compare", -1, nil, "open A.json: no such file or directory", ok, kindWrongCode, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := judge(judgeInput{Label: "A", ID: "id", Commit: "c1", Code: c.code, Exited: t0.Add(10 * time.Second),
				Intended: []string{"a", "b"}, Runs: map[string][]*run{"a": c.runs, "b": ok},
				File: c.file, FileErr: c.fileErr})
			if v.Kind != c.kind {
				t.Errorf("kind %q, want %q (%s)", v.Kind, c.kind, v.Why)
			}
			if got := v.Mismatch != ""; got != c.mismatch {
				t.Errorf("mismatch %q, want one: %v", v.Mismatch, c.mismatch)
			}
			if c.fileErr != "" && c.mismatch && !strings.Contains(v.Mismatch, c.fileErr) {
				t.Errorf("mismatch %q does not say why: %q", v.Mismatch, c.fileErr)
			}
		})
	}
}

// TestReportCountsMismatches: a mismatch is counted and listed with its
// replay command, and fails the campaign like a false green.
func TestReportCountsMismatches(t *testing.T) {
	agents := []string{"agent-01", "agent-02", "agent-03", "agent-04"}
	s := draw(8, 1, agents, testPool, 1)
	rep := &report{Cfg: config{Agents: 4, MaxFaults: 1, Pool: testPool}}
	rep.Outcomes = []*outcome{{S: s, Verdicts: []verdict{{Label: "A", ID: s.IDA, Code: 1, Want: codes(1)}}}}
	if rep.failing() || rep.count(kindMismatch) != 0 || rep.Outcomes[0].disagrees() {
		t.Fatal("a campaign without a mismatch or a false green fails")
	}
	rep.Outcomes[0].Verdicts[0].Mismatch = "exit 1, but the --result-file says exit_code 0"
	if !rep.failing() || rep.count(kindMismatch) != 1 || !rep.Outcomes[0].disagrees() {
		t.Fatalf("a mismatch: failing %v, counted %d, disagrees %v", rep.failing(), rep.count(kindMismatch), rep.Outcomes[0].disagrees())
	}
	text := rep.render()
	for _, want := range []string{"| mismatches |", "| 1 | 1 | 0 | 0 | 0 | 1 | 0 | 0 |", "**mismatch**, deploy A (oracle-8-1): exit 1, but the --result-file says exit_code 0",
		"replay: `go run ./bench/oracle -seed 8 -agents 4 -max-faults 1 -faults " + strings.Join(testPool, ",") + " -loki off -only 1`"} {
		if !strings.Contains(text, want) {
			t.Errorf("the report lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(rep.Outcomes[0].line(), "MISMATCH") {
		t.Errorf("progress line without MISMATCH: %s", rep.Outcomes[0].line())
	}
}
