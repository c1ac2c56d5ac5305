package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/internal/fleet"
	"github.com/serfdeploy/serfdeploy/orchestrate"
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
	bin, err := fleet.BuildBinary(t.TempDir())
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
			v := judge(in)
			if v.Kind != c.kind || len(v.issues()) != c.issues {
				t.Fatalf("kind %q with %d per-node issue(s), want %q with %d: want %s; %s", v.Kind, len(v.issues()), c.kind, c.issues, v.Want, v.truthLine())
			}
		})
	}
}
