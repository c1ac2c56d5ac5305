package orchestrate

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// The pure core, played as tables: each case is a deploy's targets and
// masters, a sequence of inputs as the driver would feed them, and the
// verdict it must give. No serf, no clock, no goroutine: the whole table
// runs in milliseconds. Every row of README's exit-code table and every
// case the oracle found (docs/reliability.md) is here.

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// req is this deploy's request as the nodes' answers carry it.
const req = `"req":{"module":"motd","ref":"v1","env":"production"}`

// answer is a puppet-status answer of node at s seconds; fields are more
// JSON members ("phase":"finished" ...).
func answer(s float64, node string, fields ...string) statusAnswer {
	body := append([]string{`"v":1`, fmt.Sprintf(`"node":%q`, node), `"id":"d1"`}, fields...)
	return statusAnswer{At: sec(s), From: node, Payload: []byte("{" + strings.Join(body, ",") + "}")}
}

// ran is a target's answer with a record of this deploy in phase.
func ran(s float64, node, phase string, fields ...string) statusAnswer {
	return answer(s, node, append([]string{fmt.Sprintf(`"phase":%q`, phase), req}, fields...)...)
}

// synced is a master's answer: its code sync in phase.
func synced(s float64, master, phase string, fields ...string) statusAnswer {
	return answer(s, master, append([]string{`"phase":"unknown"`, fmt.Sprintf(`"sync":%q`, phase), req, `"commit":"0123abcdef"`}, fields...)...)
}

// triggered: the master installed the code and its trigger was sent to
// and reached n nodes, of n the CLI listed.
func triggered(s float64, master string, n int) statusAnswer {
	return synced(s, master, protocol.PhaseTriggered, fmt.Sprintf(`"reached":%d,"listed":%d,"targets":%d`, n, n, n))
}

func member(s float64, node, serf string) memberSeen {
	return memberSeen{At: sec(s), Node: node, Serf: serf}
}

func started(s float64, node string) runAnswer {
	return runAnswer{At: sec(s), From: node, Payload: fmt.Appendf(nil, `{"v":1,"node":%q,"result":"started","req":{"env":"production"}}`, node)}
}

// logged is the logging service's finished record of node in phase.
func logged(node, phase string) protocol.RunRecord {
	return protocol.RunRecord{Event: "finished", DeployID: "d1", Node: node, Environment: "production", Module: "motd", Ref: "v1", Phase: phase}
}

func loggedAt(s float64, final bool, recs ...protocol.RunRecord) logRecords {
	m := map[string]protocol.RunRecord{}
	for _, r := range recs {
		m[r.Node] = r
	}
	return logRecords{At: sec(s), Records: m, Final: final}
}

type coreCase struct {
	name    string
	kind    string         // "deploy" unless set
	opts    func(*Options) // changes to the defaults
	targets []string       // default agent-01, agent-02
	masters []string       // default master-01 for a deploy
	steps   []input
	code    int
	line    string            // a part of the outcome line
	states  map[string]string // some targets' states at the end
}

// deployed is the usual start: the event fired, the master triggered
// both agents, each ran.
var deployed = []input{
	fired{At: sec(0)},
	triggered(1, "master-01", 2),
}

func steps(parts ...[]input) []input {
	var out []input
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func both(s float64, phase string, fields ...string) []input {
	return []input{ran(s, "agent-01", phase, fields...), ran(s, "agent-02", phase, fields...)}
}

// readme: one case per row of README's exit-code table, as the core
// decides it (3 is decided before any state exists: TestNoStateExitCodes).
var readme = []coreCase{
	{name: "0: every target finished", steps: steps(deployed, both(3, "finished")),
		code: ExitOK, line: "2 finished: every target finished without failures (exit 0)"},
	{name: "0: with changes", steps: steps(deployed, both(3, "finished", `"changed":4,"total":9`)),
		code: ExitOK},
	{name: "1: a run failed", steps: steps(deployed, []input{ran(3, "agent-01", "finished"), ran(3, "agent-02", "failed", `"reason":"resources_failed"`)}),
		code: ExitFailed, line: "1 finished, 1 failed: a puppet run failed or did not happen (exit 1)"},
	{name: "1: catalog did not compile", steps: steps(deployed, []input{ran(3, "agent-01", "finished"), ran(3, "agent-02", "failed", `"reason":"catalog"`)}),
		code: ExitFailed},
	{name: "1: a target disabled", steps: steps(deployed, []input{ran(3, "agent-01", "finished"), ran(3, "agent-02", "disabled", `"reason":"disabled"`)}),
		code: ExitFailed, line: "1 disabled"},
	{name: "0: a target disabled, --on-disabled skip", opts: func(o *Options) { o.OnDisabled = PolicySkip },
		steps: steps(deployed, []input{ran(3, "agent-01", "finished"), ran(3, "agent-02", "disabled")}),
		code:  ExitOK, line: "1 finished, 1 skipped", states: map[string]string{"agent-02": StateSkipped}},
	{name: "1: a target busy with another run", steps: steps(deployed, []input{ran(3, "agent-01", "finished"), ran(3, "agent-02", "busy")}),
		code: ExitFailed, line: "1 busy"},
	{name: "0: a target busy, --on-running skip", opts: func(o *Options) { o.OnRunning = PolicySkip },
		steps: steps(deployed, []input{ran(3, "agent-01", "finished"), ran(3, "agent-02", "busy")}),
		code:  ExitOK},
	{name: "1: stale: applied another deploy's code", steps: steps(deployed, []input{ran(3, "agent-01", "finished", `"applied":"motd=0123abcdef"`),
		ran(3, "agent-02", "finished", `"applied":"motd=ffffeeee99"`)}),
		code: ExitFailed, line: "1 finished, 1 stale", states: map[string]string{"agent-02": StateStale}},
	{name: "1: run: other than --expect-version", kind: "run", opts: func(o *Options) { o.Module, o.Ref, o.ExpectVersion = "", "", "motd=0123" },
		steps: []input{runSent{At: sec(0), Nodes: []string{"agent-01", "agent-02"}}, run(1, "agent-01", "finished", `"applied":"motd=0123abcdef"`), run(1, "agent-02", "finished", `"applied":"motd=9999"`)},
		code:  ExitFailed, states: map[string]string{"agent-01": StateFinished, "agent-02": StateStale}},
	{name: "2: --id already used for another request", steps: []input{fired{At: sec(0)},
		answer(1, "master-01", `"phase":"unknown","sync":"triggered","req":{"module":"motd","ref":"v2","env":"production"}`)},
		code: ExitUsage, line: "deploy id d1 was already used on master master-01"},
	{name: "2: a ref the repository does not have", steps: []input{fired{At: sec(0)},
		synced(1, "master-01", "failed", `"sync_reason":"unknown_ref","sync_msg":"fatal: couldn't find remote ref v9"`)},
		code: ExitUsage, line: "code sync failed on master master-01: fatal: couldn't find remote ref v9"},
	{name: "2: a module tree refused as unsafe", steps: []input{fired{At: sec(0)},
		synced(1, "master-01", "failed", `"sync_reason":"unsafe_module","sync_msg":"link leaves the module"`)},
		code: ExitUsage},
	{name: "4: timed out", steps: steps(deployed, []input{ran(3, "agent-01", "finished"), ran(3, "agent-02", "running"), deadline{At: sec(1800)}}),
		code: ExitIncomplete, line: "1 finished, 1 timeout", states: map[string]string{"agent-02": StateTimeout}},
	{name: "4: interrupted (Jenkins abort) mid-watch", steps: steps(deployed, []input{ran(3, "agent-01", "running"), interrupt{At: sec(4), Doing: "watching the runs"}}),
		code: ExitIncomplete, line: "re-attach with `serfdeploy watch d1`", states: map[string]string{"agent-01": StateInterrupted}},
	{name: "4: interrupted before anything was sent", steps: []input{interrupt{At: sec(0), Doing: "checking the deploy id"}},
		code: ExitIncomplete, line: "nothing was sent"},
	{name: "4: interrupted during the final read", steps: steps(deployed, both(3, "finished"), []input{interrupt{At: sec(4), Doing: "reading the logging service"}}),
		code: ExitIncomplete, line: "interrupted while reading the logging service; the runs do not depend on this CLI: re-attach with `serfdeploy watch d1`"},
	{name: "4: a node lost (serf: failed, at the next poll too)", steps: steps(deployed, []input{ran(3, "agent-01", "finished"), member(4, "agent-02", serfrpc.StatusFailed), member(5, "agent-02", serfrpc.StatusFailed)}),
		code: ExitIncomplete, line: "1 finished, 1 lost", states: map[string]string{"agent-02": StateLost}},
	{name: "4: a node left and stayed away past the grace", steps: steps(deployed, []input{ran(3, "agent-01", "finished"),
		member(4, "agent-02", serfrpc.StatusLeft), member(10, "agent-02", serfrpc.StatusLeft), member(20, "agent-02", serfrpc.StatusLeft)}),
		code: ExitIncomplete, line: "1 lost"},
	{name: "4: a node never received the run", steps: steps(deployed, []input{ran(3, "agent-01", "finished"), answer(3, "agent-02", `"phase":"unknown"`), tick{At: sec(22)}}),
		code: ExitIncomplete, line: "1 missed", states: map[string]string{"agent-02": StateMissed}},
	{name: "4: a master reached more nodes than answered", steps: steps([]input{fired{At: sec(0)}, synced(1, "master-01", "triggered", `"reached":3,"listed":3,"targets":2`)}, both(3, "finished")),
		code: ExitIncomplete, line: "the masters' trigger reached 3 node(s) and only 2 answered for this deploy (exit 4)"},
	{name: "1: a failure beats a lost node", steps: steps(deployed, []input{ran(3, "agent-01", "failed"), member(4, "agent-02", serfrpc.StatusFailed), member(5, "agent-02", serfrpc.StatusFailed)}),
		code: ExitFailed},
	{name: "5: every master lost before the sync", steps: []input{fired{At: sec(0)}, member(2, "master-01", serfrpc.StatusFailed)},
		code: ExitInfra, line: "every master was lost before the code sync finished"},
	{name: "5: code sync failed (git server unreachable)", steps: []input{fired{At: sec(0)},
		synced(1, "master-01", "failed", `"sync_reason":"fetch","sync_msg":"could not read from remote repository"`)},
		code: ExitInfra, line: "code sync failed on master master-01"},
	{name: "5: the master could not trigger the runs", steps: []input{fired{At: sec(0)},
		synced(1, "master-01", "failed", `"sync_reason":"trigger_failed","sync_msg":"serf: rpc refused"`)},
		code: ExitInfra, line: "could not trigger the Puppet runs"},
	{name: "5: the CLI's serf agent gone mid-watch", steps: steps(deployed, []input{failure{At: sec(3), Err: infra(fmt.Errorf("members: %w", serfrpc.ErrGone))}}),
		code: ExitInfra, line: "re-attach with `serfdeploy watch d1`"},
	{name: "5: the logging service unreadable at the end", steps: steps(deployed, both(3, "finished"),
		[]input{failure{At: sec(4), Err: infra(errors.New("reading the final status from the logging service: connection refused"))}}),
		code: ExitInfra, line: "logging service"},
	{name: "6: --noop with pending changes", opts: func(o *Options) { o.Puppet.Noop = true },
		steps: steps(deployed, []input{ran(3, "agent-01", "finished", `"pending":3`), ran(3, "agent-02", "finished")}),
		code:  ExitPending, line: "1 with pending changes: changes pending (noop: nothing was changed) (exit 6)"},
	{name: "1 beats 6: pending changes and a failure", steps: steps(deployed, []input{ran(3, "agent-01", "finished", `"pending":3`), ran(3, "agent-02", "failed")}),
		code: ExitFailed},
	{name: "4 beats 6: pending changes and a lost node", steps: steps(deployed, []input{ran(3, "agent-01", "finished", `"pending":3`), member(4, "agent-02", serfrpc.StatusFailed), member(5, "agent-02", serfrpc.StatusFailed)}),
		code: ExitIncomplete},
}

// run is a target's answer to puppet-status for an ad-hoc run (no module).
func run(s float64, node, phase string, fields ...string) statusAnswer {
	return answer(s, node, append([]string{fmt.Sprintf(`"phase":%q`, phase), `"req":{"env":"production"}`}, fields...)...)
}

// oracle: the cases the truth oracle and the acceptance runs found, each
// once a wrong verdict (docs/reliability.md names them).
var oracle = []coreCase{
	{name: "seed 2 #73: a re-attached watch finds fewer records than the deploy listed",
		targets: []string{"agent-01"},
		steps: []input{fired{At: sec(0), Reattached: true}, synced(0, "master-01", "triggered", `"reached":1,"listed":1,"targets":2`),
			ran(0, "agent-01", "finished")},
		code: ExitIncomplete, line: "the deploy listed 2 target(s) and only 1 have a record of it"},
	{name: "seed 2 #6, #65: a joiner fails while a target hangs to the timeout",
		steps: steps(deployed, []input{ran(3, "agent-01", "running"), ran(3, "agent-02", "finished"),
			ran(1797, "late-01", "failed", `"reason":"resources_failed"`), deadline{At: sec(1800)}}),
		code: ExitFailed, states: map[string]string{"agent-01": StateTimeout, "late-01": StateFailed}},
	{name: "seed 4 #72: a master of a re-attached watch never answered",
		targets: []string{"agent-01"}, masters: []string{},
		steps: []input{fired{At: sec(0), Reattached: true}, ran(0, "agent-01", "finished")},
		code:  ExitIncomplete, line: "1 master(s) never answered whether they have a record of it"},
	{name: "seed 6 #1: a joiner answers before the CLI's agent lists it",
		steps: steps(deployed, []input{synced(2, "master-01", "triggered", `"reached":3,"listed":3,"targets":2`),
			ran(3, "late-01", "running"), member(5, "late-01", ""), ran(6, "late-01", "finished")}, both(6, "finished")),
		code: ExitOK, states: map[string]string{"late-01": StateFinished}},
	{name: "seed 42 #65: a node that rejoined answers while the CLI's agent still lists it left",
		steps: steps(deployed, []input{ran(3, "agent-01", "finished"), ran(3, "agent-02", "running"),
			member(4, "agent-02", serfrpc.StatusLeft), ran(5, "agent-02", "running"), member(20, "agent-02", serfrpc.StatusLeft),
			ran(21, "agent-02", "failed")}),
		code: ExitFailed, states: map[string]string{"agent-02": StateFailed}},
	{name: "seed 41 #6: serf calls a node failed that answers (a loaded machine)",
		steps: steps(deployed, []input{ran(3, "agent-01", "finished"), ran(3, "agent-02", "running"),
			member(4, "agent-02", serfrpc.StatusFailed), ran(5, "agent-02", "running"), member(6, "agent-02", serfrpc.StatusFailed),
			ran(7, "agent-02", "finished")}),
		code: ExitOK, states: map[string]string{"agent-02": StateFinished}},
	{name: "a left node back within the grace is not lost",
		steps: steps(deployed, []input{ran(3, "agent-01", "running"), member(4, "agent-01", serfrpc.StatusLeft),
			member(10, "agent-01", serfrpc.StatusAlive), ran(11, "agent-01", "finished"), ran(11, "agent-02", "finished")}),
		code: ExitOK},
	{name: "a node's record of another request is not counted",
		steps: steps(deployed, []input{ran(3, "agent-01", "finished"),
			answer(3, "agent-02", `"phase":"finished"`, `"req":{"module":"motd","ref":"v2","env":"production"}`), deadline{At: sec(1800)}}),
		code: ExitIncomplete, states: map[string]string{"agent-02": StateTimeout}},
	{name: "three unreadable answers in a row: lost",
		steps: steps(deployed, []input{ran(3, "agent-01", "finished"),
			statusAnswer{At: sec(3), From: "agent-02", Payload: []byte("garbage")},
			statusAnswer{At: sec(4), From: "agent-02", Payload: []byte("garbage")},
			statusAnswer{At: sec(5), From: "agent-02", Payload: []byte("garbage")}}),
		code: ExitIncomplete, line: "1 lost"},
	{name: "an answer claiming another node's name is unreadable",
		steps: steps(deployed, []input{ran(3, "agent-01", "finished"),
			statusAnswer{At: sec(3), From: "agent-02", Payload: fmt.Appendf(nil, `{"v":1,"node":"agent-01","id":"d1","phase":"finished",%s}`, req)},
			deadline{At: sec(1800)}}),
		code: ExitIncomplete, states: map[string]string{"agent-02": StateTimeout}},
	{name: "answers lost: the logging service settles the run",
		steps: steps(deployed, []input{ran(3, "agent-01", "finished"), ran(3, "agent-02", "running"),
			loggedAt(12, false, logged("agent-02", "finished"))}),
		code: ExitOK, states: map[string]string{"agent-02": StateFinished}},
	{name: "the final read: the logging service's record is the final word",
		steps: steps(deployed, both(3, "finished"), []input{loggedAt(4, true, logged("agent-01", "finished"), logged("agent-02", "failed"))}),
		code:  ExitFailed, states: map[string]string{"agent-02": StateFailed}},
	{name: "the final read: a record of another request under the id is not taken",
		steps: steps(deployed, both(3, "finished"), []input{loggedAt(4, true, logged("agent-01", "finished"),
			protocol.RunRecord{Event: "finished", DeployID: "d1", Node: "agent-02", Environment: "production", Module: "motd", Ref: "v2", Phase: "failed"})}),
		code: ExitOK},
	{name: "a record given up (handler stopped before its worker) waits again",
		steps: steps(deployed, []input{ran(3, "agent-01", "finished"), ran(3, "agent-02", "pending"),
			answer(4, "agent-02", `"phase":"unknown"`)}),
		code: ExitIncomplete, states: map[string]string{"agent-02": StateWaiting}},
	{name: "a graceful leave is not reported as a failure",
		steps: steps(deployed, []input{ran(3, "agent-01", "finished"),
			member(4, "agent-02", serfrpc.StatusLeft), member(20, "agent-02", serfrpc.StatusLeft)}),
		code: ExitIncomplete, line: "1 lost"},
	{name: "a deploy where every target was skipped says nothing ran",
		opts:  func(o *Options) { o.OnDisabled = PolicySkip },
		steps: steps(deployed, both(3, "disabled")),
		code:  ExitOK, line: "2 skipped: no target ran: every one was skipped (exit 0)"},
	{name: "stale nodes are named in the outcome line",
		targets: []string{"agent-01", "agent-02", "agent-03"},
		steps: []input{fired{At: sec(0)}, triggered(1, "master-01", 3), ran(3, "agent-01", "finished"), ran(3, "agent-02", "finished"),
			ran(3, "agent-03", "finished", `"applied":"motd=ffffeeee99"`)},
		code: ExitFailed, line: "2 finished, 1 stale: a puppet run failed or did not happen (exit 1)"},
	{name: "run: accepted, then silent to the timeout", kind: "run", opts: func(o *Options) { o.Module, o.Ref = "", "" },
		steps: []input{runSent{At: sec(0), Nodes: []string{"agent-01", "agent-02"}}, started(0.5, "agent-01"), started(0.5, "agent-02"), run(2, "agent-02", "finished"), deadline{At: sec(1800)}},
		code:  ExitIncomplete, states: map[string]string{"agent-01": StateTimeout}, line: "1 finished, 1 timeout"},
	{name: "late answers after an interrupt change nothing",
		steps: steps(deployed, []input{ran(3, "agent-01", "running"), interrupt{At: sec(4), Doing: "watching the runs"}}, both(5, "failed")),
		code:  ExitIncomplete},
}

func TestCoreREADMEExitCodes(t *testing.T) { playCore(t, readme) }
func TestCoreOracleCases(t *testing.T)     { playCore(t, oracle) }

func playCore(t *testing.T, cases []coreCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := coreState(c)
			for _, in := range c.steps {
				s.apply(in)
			}
			code, line := s.verdict()
			if code != c.code || !strings.Contains(line, c.line) {
				t.Fatalf("verdict exit %d %q, want exit %d with %q", code, line, c.code, c.line)
			}
			if !strings.HasSuffix(line, fmt.Sprintf("(exit %d)", code)) && s.end == nil {
				t.Fatalf("the outcome line %q does not end with its exit code", line)
			}
			for node, want := range c.states {
				if got := stateIn(s.nodes(), node); got != want {
					t.Errorf("%s: %s, want %s", node, got, want)
				}
			}
			res := s.result(&Result{}, sec(2000))
			if res.ExitCode != code || res.Outcome != line || (s.end != nil) != (res.Error != "") {
				t.Fatalf("the result says exit %d %q (error %q): not the verdict", res.ExitCode, res.Outcome, res.Error)
			}
		})
	}
}

func coreState(c coreCase) *deployState {
	opts := &Options{ID: "d1", Module: "motd", Ref: "v1", Environment: "production"}
	if c.opts != nil {
		c.opts(opts)
	}
	opts.setDefaults()
	kind := c.kind
	if kind == "" {
		kind = "deploy"
	}
	targets := c.targets
	if targets == nil {
		targets = []string{"agent-01", "agent-02"}
	}
	masters := c.masters
	if masters == nil && kind == "deploy" {
		masters = []string{"master-01"}
	}
	s := newDeployState(opts, kind, members(targets), members(masters))
	if c.masters != nil && len(c.masters) == 0 && kind == "deploy" {
		s.silent = []string{"master-01"} // asked, never answered
	}
	return s
}

func members(names []string) []serfrpc.Member {
	var out []serfrpc.Member
	for _, n := range names {
		out = append(out, serfrpc.Member{Name: n})
	}
	return out
}

func stateIn(nodes []NodeResult, name string) string {
	for _, n := range nodes {
		if n.Node == name {
			return n.State
		}
	}
	return "(absent)"
}

// TestCoreRollout: a rollout is one state whose batches start one after
// another. Before, each batch was a watch of its own: batch 2 took agent-01
// of batch 1 for a late joiner, counted its failure twice, never started
// batch 3, and listed 12 nodes for 6 targets.
func TestCoreRollout(t *testing.T) {
	opts := &Options{ID: "d1", Module: "motd", Ref: "v1", Environment: "production", Batch: "2", MaxFailures: "1"}
	opts.setDefaults()
	names := []string{"agent-01", "agent-02", "agent-03", "agent-04", "agent-05", "agent-06"}
	s := newDeployState(opts, "deploy", members(names), members([]string{"master-01"}))
	s.apply(fired{At: sec(0)})
	s.apply(synced(1, "master-01", protocol.PhaseSynced, `"batched":true,"targets":6`))
	if done, n := s.syncDone(); !done || n != 1 {
		t.Fatalf("sync done %v with %d synced", done, n)
	}
	var batches [][]string
	for at := 2.0; ; at += 10 {
		batch, ok := s.nextBatch()
		if !ok {
			break
		}
		batches = append(batches, batch)
		s.apply(runSent{At: sec(at), Nodes: batch})
		// Every node answers each poll, batch 1's too: its answers are
		// its own, not a joiner's.
		for _, n := range names[:2*len(batches)] {
			phase := "finished"
			if n == "agent-01" {
				phase = "failed"
			}
			s.apply(ran(at+1, n, phase))
		}
		if !s.settled() {
			t.Fatalf("batch %d not settled", len(batches))
		}
		s.apply(batchDone{At: sec(at + 2)})
	}
	code, line := s.verdict()
	nodes := s.nodes()
	if len(batches) != 3 || len(nodes) != 6 || code != ExitFailed || line != "5 finished, 1 failed: a puppet run failed or did not happen (exit 1)" || s.failed() != 1 {
		t.Fatalf("%d batches, %d nodes, %d failures, exit %d %q", len(batches), len(nodes), s.failed(), code, line)
	}

	// Over the budget: the rest is skipped, not started.
	opts.MaxFailures = ""
	s = newDeployState(opts, "deploy", members(names), members([]string{"master-01"}))
	s.apply(fired{At: sec(0)})
	s.apply(runSent{At: sec(1), Nodes: []string{"agent-01", "agent-02"}})
	s.apply(ran(2, "agent-01", "failed"))
	s.apply(ran(2, "agent-02", "finished"))
	s.apply(batchDone{At: sec(3)})
	if _, ok := s.nextBatch(); ok {
		t.Fatal("a batch started over --max-failures")
	}
	code, line = s.verdict()
	if code != ExitFailed || !strings.Contains(line, "1 finished, 1 failed") || !strings.Contains(line, "4 skipped") || stateIn(s.nodes(), "agent-06") != StateSkipped {
		t.Fatalf("exit %d %q", code, line)
	}
}

// TestCoreRolloutInterruptedBetweenBatches: the batches not started are
// skipped with the reason, and the verdict is the interrupt's.
func TestCoreRolloutInterruptedBetweenBatches(t *testing.T) {
	opts := &Options{ID: "d1", Batch: "1"}
	opts.setDefaults()
	s := newDeployState(opts, "run", members([]string{"a", "b", "c"}), nil)
	s.apply(runSent{At: sec(0), Nodes: []string{"a"}})
	s.apply(answer(1, "a", `"phase":"finished"`))
	s.apply(batchDone{At: sec(2)})
	s.apply(interrupt{At: sec(3), Doing: "sending the run request"})
	code, line := s.verdict()
	if code != ExitIncomplete || !strings.Contains(line, "serfdeploy watch d1") || stateIn(s.nodes(), "c") != StateSkipped {
		t.Fatalf("exit %d %q %+v", code, line, s.nodes())
	}
}

// TestCoreConcurrencyWindow: --concurrency 3 over 10 targets keeps 3 runs
// going while work remains, never more, and starts no new run once
// --max-failures is spent.
func TestCoreConcurrencyWindow(t *testing.T) {
	var names []string
	for i := 1; i <= 10; i++ {
		names = append(names, fmt.Sprintf("agent-%02d", i))
	}
	for _, c := range []struct {
		name    string
		fail    map[string]bool
		budget  string
		started int // targets whose run was requested, at the end
		code    int
		skipped int
	}{
		{name: "all fine", started: 10, code: ExitOK},
		{name: "one failure, budget 1", fail: map[string]bool{"agent-02": true}, budget: "1", started: 10, code: ExitFailed},
		{name: "two failures, budget 1", fail: map[string]bool{"agent-02": true, "agent-05": true}, budget: "1", code: ExitFailed, skipped: 10 - 7, started: 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := &Options{ID: "d1", Concurrency: 3, MaxFailures: c.budget}
			opts.setDefaults()
			s := newDeployState(opts, "run", members(names), nil)
			at := 0.0
			for step := 0; step < 50; step++ {
				if batch, ok := s.nextBatch(); ok {
					s.apply(runSent{At: sec(at), Nodes: batch})
				}
				if n := s.unfinished(); n > 3 || n < 3 && len(s.unsent()) > 0 && !s.stopped {
					t.Fatalf("step %d: %d runs going with %d not started", step, n, len(s.unsent()))
				}
				if s.settled() {
					break
				}
				// The oldest run going ends.
				for _, name := range s.order {
					if s.sent[name] && !Final(s.targets[name].State) {
						phase := "finished"
						if c.fail[name] {
							phase = "failed"
						}
						s.apply(answer(at+1, name, fmt.Sprintf(`"phase":%q`, phase)))
						break
					}
				}
				at += 2
				s.apply(tick{At: sec(at)})
			}
			code, line := s.verdict()
			if len(s.sent) != c.started || code != c.code || strings.Count(line, "skipped") != min(c.skipped, 1) {
				t.Fatalf("%d started, exit %d %q", len(s.sent), code, line)
			}
		})
	}
}
