package orchestrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/logclient"
	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// cluster: one master, two qa agents, one prod agent. Agents run for one
// poll and then finish according to outcome(node).
func cluster(outcome func(node string) protocol.Status) *fakeRPC {
	f := &fakeRPC{}
	f.add("m1", serfrpc.StatusAlive, map[string]string{"role": "puppetmaster"})
	f.add("qa1", serfrpc.StatusAlive, map[string]string{"segment": "qa"})
	f.add("qa2", serfrpc.StatusAlive, map[string]string{"segment": "qa"})
	f.add("prod1", serfrpc.StatusAlive, map[string]string{"segment": "prod"})
	f.answer = func(node, query string, payload []byte) []byte {
		var req protocol.StatusRequest
		_ = json.Unmarshal(payload, &req)
		switch {
		case query == protocol.QueryPuppetRun:
			return statusJSON(protocol.Status{Node: node}) // not a status, but never read as one here
		case node == "m1":
			return statusJSON(protocol.Status{Node: node, Role: "master", ID: req.ID, Phase: protocol.PhaseUnknown, Sync: protocol.PhaseTriggered, Commit: "abc123"})
		case f.polls < 2:
			return statusJSON(protocol.Status{Node: node, Role: "agent", ID: req.ID, Phase: protocol.PhaseRunning})
		default:
			st := outcome(node)
			st.Node, st.Role, st.ID = node, "agent", req.ID
			return statusJSON(st)
		}
	}
	return f
}

func finishedOK(string) protocol.Status {
	return protocol.Status{Phase: protocol.PhaseFinished, Exit: intp(2), Changed: 1, Total: 8, Duration: 2.5}
}

func qaOptions(id string) Options {
	o := fastOptions(id)
	o.Filter = serfrpc.Filter{Tags: map[string]string{"segment": "qa"}}
	return o
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) carries no exit code", err, err)
	}
	return e.Code
}

// refusedBeforeFiring runs a deploy that must end with code, its message
// naming want, before any event was fired.
func refusedBeforeFiring(t *testing.T, f *fakeRPC, opts Options, code int, want string) {
	t.Helper()
	_, err := Deploy(context.Background(), f, opts)
	if exitCode(t, err) != code || !strings.Contains(err.Error(), want) {
		t.Fatalf("err %v, want exit %d naming %q", err, code, want)
	}
	if len(f.events) != 0 {
		t.Fatalf("%d events fired", len(f.events))
	}
}

func TestDeployFinishesOnlyTargets(t *testing.T) {
	f := cluster(finishedOK)
	res, err := Deploy(context.Background(), f, qaOptions("d1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != ExitOK {
		t.Fatalf("exit %d (%s), want 0", res.ExitCode, res.Outcome)
	}
	var names []string
	for _, n := range res.Nodes {
		names = append(names, n.Node+":"+n.State)
	}
	if got := strings.Join(names, ","); got != "qa1:finished,qa2:finished" {
		t.Fatalf("nodes %s", got)
	}
	if len(f.events) != 1 || f.events[0].name != protocol.EventDeploy || f.events[0].coalesce {
		t.Fatalf("events fired: %+v", f.events)
	}
	var d protocol.Deploy
	if err := protocol.DecodeStrict(f.events[0].payload, &d); err != nil {
		t.Fatal(err)
	}
	if d.ID != "d1" || d.Module != "motd" || d.Ref != "v1" || d.Tags["segment"] != "qa" || d.SkipMasters {
		t.Fatalf("payload %+v", d)
	}
	if len(res.Masters) != 1 || res.Masters[0].Commit != "abc123" {
		t.Fatalf("masters %+v", res.Masters)
	}
	// Status polls go only to nodes still of interest, never to prod1.
	for _, q := range f.queries {
		for _, n := range q.Filter.Nodes {
			if n == "prod1" {
				t.Fatalf("prod1 was polled: %+v", q)
			}
		}
	}
}

func TestDeployWithoutFilterSkipsMasters(t *testing.T) {
	f := cluster(finishedOK)
	res, err := Deploy(context.Background(), f, fastOptions("d2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Nodes) != 3 {
		t.Fatalf("targets %+v, want the three agents", res.Nodes)
	}
	var d protocol.Deploy
	_ = json.Unmarshal(f.events[0].payload, &d)
	if !d.SkipMasters {
		t.Fatal("payload does not tell nodes to skip masters")
	}
}

func TestDeployOneFailedNodeExits1(t *testing.T) {
	f := cluster(func(node string) protocol.Status {
		if node == "qa2" {
			return protocol.Status{Phase: protocol.PhaseFailed, Reason: protocol.ReasonResourcesFailed, Exit: intp(6), Changed: 1, Failed: 1, Total: 8, Message: "Exec[x] returned 1"}
		}
		return finishedOK(node)
	})
	res, err := Deploy(context.Background(), f, qaOptions("d3"))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != ExitFailed {
		t.Fatalf("exit %d, want 1", res.ExitCode)
	}
	n := res.Nodes[1]
	if n.Node != "qa2" || n.State != StateFailed || n.Failed != 1 || *n.ExitCode != 6 || n.Reason != protocol.ReasonResourcesFailed {
		t.Fatalf("qa2: %+v", n)
	}
}

func TestDeployLostNodeExits4(t *testing.T) {
	f := cluster(finishedOK)
	f.answer = wrapSilent(f.answer, "qa2")
	f.onPoll = func(f *fakeRPC, poll int) {
		if poll == 2 {
			f.setStatus("qa2", serfrpc.StatusFailed)
		}
	}
	res, err := Deploy(context.Background(), f, qaOptions("d4"))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != ExitIncomplete || res.Nodes[1].State != StateLost {
		t.Fatalf("exit %d, qa2 %+v", res.ExitCode, res.Nodes[1])
	}
	if !strings.Contains(res.Nodes[1].Message, "failed") {
		t.Fatalf("lost message %q does not say serf saw it fail", res.Nodes[1].Message)
	}
}

// TestLeftNodeHasAGraceToComeBack: a target whose agent left (an agent
// restart) and came back within LeaveGrace is followed to its result; one
// that stays away is lost after it.
func TestLeftNodeHasAGraceToComeBack(t *testing.T) {
	for _, back := range []bool{true, false} {
		f := cluster(finishedOK)
		var running atomic.Bool
		running.Store(true)
		finished := f.answer
		f.answer = func(n, q string, p []byte) []byte {
			if n == "qa2" && q == protocol.QueryPuppetStatus && running.Load() {
				return statusJSON(protocol.Status{Node: n, Role: "agent", Phase: protocol.PhaseRunning})
			}
			return finished(n, q, p)
		}
		f.onPoll = func(f *fakeRPC, poll int) {
			if poll != 2 {
				return
			}
			f.setStatus("qa2", serfrpc.StatusLeft)
			if back {
				time.AfterFunc(200*time.Millisecond, func() {
					f.mu.Lock()
					defer f.mu.Unlock()
					f.setStatus("qa2", serfrpc.StatusAlive)
					running.Store(false)
				})
			}
		}
		opts := qaOptions("d-left")
		opts.LeaveGrace = 300 * time.Millisecond
		if back {
			opts.LeaveGrace = time.Minute
		}
		res, err := Deploy(context.Background(), f, opts)
		if err != nil {
			t.Fatal(err)
		}
		want, code := StateFinished, ExitOK
		if !back {
			want, code = StateLost, ExitIncomplete
		}
		if res.Nodes[1].State != want || res.ExitCode != code {
			t.Fatalf("back %v: qa2 %+v, exit %d", back, res.Nodes[1], res.ExitCode)
		}
	}
}

// wrapSilent makes node stay running forever.
func wrapSilent(answer func(string, string, []byte) []byte, node string) func(string, string, []byte) []byte {
	return func(n, q string, p []byte) []byte {
		if n == node && q == protocol.QueryPuppetStatus {
			return statusJSON(protocol.Status{Node: n, Role: "agent", Phase: protocol.PhaseRunning})
		}
		return answer(n, q, p)
	}
}

func TestDeployTimeoutNamesTheNode(t *testing.T) {
	f := cluster(finishedOK)
	f.answer = wrapSilent(f.answer, "qa1")
	opts := qaOptions("d5")
	opts.Timeout = 300 * time.Millisecond
	opts.PollInterval = 20 * time.Millisecond
	res, err := Deploy(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != ExitIncomplete || res.Nodes[0].State != StateTimeout || res.Nodes[1].State != StateFinished {
		t.Fatalf("exit %d nodes %+v", res.ExitCode, res.Nodes)
	}
	if !strings.Contains(res.Nodes[0].Message, "running") {
		t.Fatalf("timeout message %q does not say what the node was doing", res.Nodes[0].Message)
	}
}

func TestDeployNoTargetsExits3(t *testing.T) {
	f := cluster(finishedOK)
	opts := fastOptions("d6")
	opts.Filter = serfrpc.Filter{Tags: map[string]string{"segment": "staging"}}
	refusedBeforeFiring(t, f, opts, ExitNoTargets, "segment=staging")
}

func TestDeployAnchorsTagFilters(t *testing.T) {
	f := cluster(finishedOK)
	f.add("qa10", serfrpc.StatusAlive, map[string]string{"segment": "qax"})
	opts := qaOptions("d7")
	res, err := Deploy(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range res.Nodes {
		if n.Node == "qa10" {
			t.Fatal("segment=qa matched segment=qax")
		}
	}
}

func TestDeployNoMasterExits5(t *testing.T) {
	f := cluster(finishedOK)
	f.setStatus("m1", serfrpc.StatusFailed)
	_, err := Deploy(context.Background(), f, qaOptions("d8"))
	if exitCode(t, err) != ExitInfra || !strings.Contains(err.Error(), "master") {
		t.Fatalf("err %v", err)
	}
}

func TestDeploySyncFailureExits5WithGitMessage(t *testing.T) {
	f := cluster(finishedOK)
	f.override(func(n, q string) ([]byte, bool) {
		return statusJSON(protocol.Status{Node: n, Role: "master", Phase: protocol.PhaseUnknown, Sync: protocol.PhaseFailed, SyncMsg: "fatal: couldn't find remote ref nope"}), n == "m1"
	})
	res, err := Deploy(context.Background(), f, qaOptions("d9"))
	if exitCode(t, err) != ExitInfra || !strings.Contains(err.Error(), "couldn't find remote ref nope") {
		t.Fatalf("err %v", err)
	}
	if res == nil || res.ExitCode != ExitInfra || res.Masters[0].Phase != protocol.PhaseFailed {
		t.Fatalf("result %+v", res)
	}
}

func TestDeployOversizePayloadExits2BeforeSending(t *testing.T) {
	f := cluster(finishedOK)
	opts := fastOptions("d10")
	for i := 0; i < 30; i++ {
		name := fmt.Sprintf("web-%02d.prod.example.com", i)
		f.add(name, serfrpc.StatusAlive, nil)
		opts.Filter.Nodes = append(opts.Filter.Nodes, name)
	}
	refusedBeforeFiring(t, f, opts, ExitUsage, "512")
}

func TestDeployDropsBuildURLToFit(t *testing.T) {
	f := cluster(finishedOK)
	opts := qaOptions("d11")
	opts.Build = &protocol.Build{Tag: "jenkins-release-11", URL: "https://jenkins.example.com/" + strings.Repeat("x", 400), Job: "release"}
	var notes []string
	opts.Observer.OnNote = func(s string) { notes = append(notes, s) }
	if _, err := Deploy(context.Background(), f, opts); err != nil {
		t.Fatal(err)
	}
	var d protocol.Deploy
	_ = json.Unmarshal(f.events[0].payload, &d)
	if d.Build == nil || d.Build.Tag != "jenkins-release-11" || d.Build.URL != "" {
		t.Fatalf("build %+v", d.Build)
	}
	if !strings.Contains(strings.Join(notes, "\n"), "did not fit") {
		t.Fatalf("no note about the dropped URL: %q", notes)
	}
}

func TestGarbledAnswersEndInLost(t *testing.T) {
	f := cluster(finishedOK)
	f.override(func(n, q string) ([]byte, bool) {
		return []byte("sh: serfdeploy: not found"), n == "qa1" && q == protocol.QueryPuppetStatus
	})
	res, err := Deploy(context.Background(), f, qaOptions("d12"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes[0].State != StateLost || res.Nodes[0].Reason != "unreadable_status" || res.ExitCode != ExitIncomplete {
		t.Fatalf("qa1 %+v exit %d", res.Nodes[0], res.ExitCode)
	}
}

func TestNeverTriggeredNodeIsMissed(t *testing.T) {
	f := cluster(finishedOK)
	f.override(func(n, q string) ([]byte, bool) {
		return statusJSON(protocol.Status{Node: n, Role: "agent", Phase: protocol.PhaseUnknown}), n == "qa2" && q == protocol.QueryPuppetStatus
	})
	opts := qaOptions("d13")
	opts.PollInterval = 20 * time.Millisecond
	res, err := Deploy(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes[1].State != StateMissed || res.ExitCode != ExitIncomplete {
		t.Fatalf("qa2 %+v exit %d", res.Nodes[1], res.ExitCode)
	}
}

func TestInterruptExits4WithPartialResult(t *testing.T) {
	f := cluster(finishedOK)
	f.answer = wrapSilent(wrapSilent(f.answer, "qa1"), "qa2")
	ctx, cancel := context.WithCancel(context.Background())
	f.onPoll = func(_ *fakeRPC, poll int) {
		if poll == 3 {
			cancel()
		}
	}
	res, err := Deploy(ctx, f, qaOptions("d14"))
	// Interrupted nodes are labelled so (not "timeout") and counted before
	// they are marked final (the count said 0 before).
	if exitCode(t, err) != ExitIncomplete || res == nil || res.Nodes[0].State != StateInterrupted || res.Nodes[1].State != StateInterrupted {
		t.Fatalf("err %v res %+v", err, res)
	}
	if !strings.Contains(err.Error(), "2 node(s) had not finished") {
		t.Fatalf("closing line %q", err)
	}
}

func TestFinalStatusComesFromTheLog(t *testing.T) {
	f := cluster(finishedOK)
	log := &fakeLog{records: map[string]protocol.RunRecord{
		"qa1": {Event: "finished", DeployID: "d15", Node: "qa1", Phase: protocol.PhaseFinished, Outcome: protocol.Outcome{ExitCode: intp(2), Changed: 3, Total: 9}},
		"qa2": {Event: "finished", DeployID: "d15", Node: "qa2", Phase: protocol.PhaseFailed, Outcome: protocol.Outcome{Reason: protocol.ReasonResourcesFailed, ExitCode: intp(6), Failed: 1, FailedResources: []protocol.FailedResource{{Resource: "Exec[boom]", Message: "'/bin/false' returned 1 instead of one of [0]"}}}},
	}}
	opts := qaOptions("d15")
	opts.Log = log
	res, err := Deploy(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != ExitFailed || res.Nodes[0].Changed != 3 || res.Nodes[0].Source != "log" {
		t.Fatalf("exit %d nodes %+v", res.ExitCode, res.Nodes)
	}
	fr := res.Nodes[1].FailedResources
	if len(fr) != 1 || fr[0].Resource != "Exec[boom]" || !strings.Contains(fr[0].Message, "returned 1") {
		t.Fatalf("failed resources %+v", fr)
	}
}

func TestMissingLogRecordIsReported(t *testing.T) {
	f := cluster(finishedOK)
	opts := qaOptions("d16")
	opts.Log = &fakeLog{records: map[string]protocol.RunRecord{
		"qa1": {Event: "finished", DeployID: "d16", Node: "qa1", Phase: protocol.PhaseFinished, Outcome: protocol.Outcome{ExitCode: intp(0)}},
		"qa2": {Event: "started", DeployID: "d16", Node: "qa2", Phase: protocol.PhaseRunning},
	}}
	res, err := Deploy(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes[0].LogMissing || !res.Nodes[1].LogMissing || res.Nodes[1].State != StateFinished {
		t.Fatalf("nodes %+v", res.Nodes)
	}
}

func TestUnreachableLogExits5(t *testing.T) {
	f := cluster(finishedOK)
	opts := qaOptions("d17")
	opts.Log = &fakeLog{err: logclient.ErrUnreachable}
	res, err := Deploy(context.Background(), f, opts)
	if exitCode(t, err) != ExitInfra || res == nil || res.ExitCode != ExitInfra {
		t.Fatalf("err %v", err)
	}
}

func TestRunBusyAndDisabledExit1(t *testing.T) {
	f := cluster(finishedOK)
	inner := f.answer
	f.answer = func(n, q string, p []byte) []byte {
		if q == protocol.QueryPuppetRun {
			a := protocol.RunAnswer{V: 1, Node: n, Result: protocol.RunStarted}
			switch n {
			case "qa2":
				a.Result, a.Running = protocol.RunBusy, "other-deploy"
			case "prod1":
				a.Result, a.Message = protocol.RunDisabled, "maintenance by bob"
			}
			b, _ := json.Marshal(a)
			return b
		}
		return inner(n, q, p)
	}
	res, err := Run(context.Background(), f, fastOptions("r1"))
	if err != nil {
		t.Fatal(err)
	}
	got := nodeStates(res)
	if got["qa1"] != StateFinished || got["qa2"] != StateBusy || got["prod1"] != StateDisabled || res.ExitCode != ExitFailed {
		t.Fatalf("states %v exit %d", got, res.ExitCode)
	}
	if len(f.events) != 0 {
		t.Fatal("run fired a deploy event")
	}
}

func TestStatusWithID(t *testing.T) {
	f := cluster(finishedOK)
	f.polls = 5 // agents answer finished
	rep, err := Status(context.Background(), f, serfrpc.Filter{Tags: map[string]string{"segment": "qa"}}, "d18", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Nodes) != 2 || !rep.Nodes[0].Answered || rep.Nodes[0].Status.Phase != protocol.PhaseFinished || rep.ExitCode != ExitOK {
		t.Fatalf("report %+v", rep)
	}
	f.answer = wrapSilent(f.answer, "qa1")
	rep, _ = Status(context.Background(), f, serfrpc.Filter{Tags: map[string]string{"segment": "qa"}}, "d18", time.Second)
	if rep.ExitCode != ExitIncomplete {
		t.Fatalf("a running node: exit %d, want 4", rep.ExitCode)
	}
}

func TestStatusNoAnswer(t *testing.T) {
	f := cluster(finishedOK)
	f.override(func(n, _ string) ([]byte, bool) { return nil, n == "qa2" })
	rep, err := Status(context.Background(), f, serfrpc.Filter{Tags: map[string]string{"segment": "qa"}}, "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.ExitCode != ExitIncomplete || rep.Nodes[1].Answered || rep.Nodes[1].Problem == "" {
		t.Fatalf("report %+v", rep)
	}
	_, err = Status(context.Background(), f, serfrpc.Filter{Nodes: []string{"nope"}}, "", time.Second)
	if exitCode(t, err) != ExitNoTargets {
		t.Fatalf("err %v", err)
	}
}

func TestReportFromLog(t *testing.T) {
	log := &fakeLog{records: map[string]protocol.RunRecord{
		"qa1": {Event: "finished", DeployID: "d19", Node: "qa1", Module: "motd", Ref: "v2", Phase: protocol.PhaseFinished, Outcome: protocol.Outcome{ExitCode: intp(2)}, Time: time.Now()},
		"qa2": {Event: "finished", DeployID: "d19", Node: "qa2", Module: "motd", Ref: "v2", Phase: protocol.PhaseFailed, Outcome: protocol.Outcome{ExitCode: intp(4), Failed: 2}, Time: time.Now()},
	}}
	res, err := Report(context.Background(), log, "d19", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != ExitFailed || res.Module != "motd" || len(res.Nodes) != 2 || res.Nodes[1].Failed != 2 {
		t.Fatalf("report %+v", res)
	}
	_, err = Report(context.Background(), log, "unknown-id", time.Now().Add(-time.Hour))
	if exitCode(t, err) != ExitNoTargets || !strings.Contains(err.Error(), "unknown-id") {
		t.Fatalf("unknown id: %v", err)
	}
	_, err = Report(context.Background(), log, "bad id;rm", time.Now())
	if exitCode(t, err) != ExitUsage {
		t.Fatalf("bad id: %v", err)
	}
}

func TestRunRequestResentToNodesThatMissedIt(t *testing.T) {
	f := cluster(finishedOK)
	inner := f.answer
	gotRun := false
	f.answer = func(n, q string, p []byte) []byte {
		if n != "qa2" {
			return inner(n, q, p)
		}
		if q == protocol.QueryPuppetRun {
			var req protocol.RunRequest
			if err := protocol.DecodeStrict(p, &req); err != nil || req.ID != "d20" || req.Module != "motd" || req.Ref != "v1" {
				t.Errorf("resent request %s: %v", p, err)
			}
			gotRun = true
			b, _ := json.Marshal(protocol.RunAnswer{V: 1, Node: n, Result: protocol.RunStarted})
			return b
		}
		if !gotRun {
			return statusJSON(protocol.Status{Node: n, Role: "agent", Phase: protocol.PhaseUnknown})
		}
		return inner(n, q, p)
	}
	opts := qaOptions("d20")
	opts.PollInterval = 50 * time.Millisecond
	opts.MissedAfter = 30 * time.Second
	res, err := Deploy(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !gotRun || res.ExitCode != ExitOK || res.Nodes[1].State != StateFinished {
		t.Fatalf("resent %v, exit %d, qa2 %+v", gotRun, res.ExitCode, res.Nodes[1])
	}
}

func TestDeployEventFiredAgainWhenNoMasterHeardIt(t *testing.T) {
	f := cluster(finishedOK)
	f.override(func(n, q string) ([]byte, bool) {
		// Nobody got the first event.
		return statusJSON(protocol.Status{Node: n, Phase: protocol.PhaseUnknown}), len(f.events) < 2 && q == protocol.QueryPuppetStatus
	})
	opts := qaOptions("d21")
	opts.PollInterval = 50 * time.Millisecond
	res, err := Deploy(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.events) != 2 || res.ExitCode != ExitOK {
		t.Fatalf("%d events, exit %d", len(f.events), res.ExitCode)
	}
}

func TestStatusUnknownID(t *testing.T) {
	f := cluster(finishedOK)
	f.answer = func(n, q string, p []byte) []byte {
		return statusJSON(protocol.Status{Node: n, Role: "agent", Phase: protocol.PhaseUnknown})
	}
	_, err := Status(context.Background(), f, serfrpc.Filter{}, "never-deployed", time.Second)
	if exitCode(t, err) != ExitNoTargets || !strings.Contains(err.Error(), "never-deployed") {
		t.Fatalf("unknown id: %v", err)
	}
}

// TestInterruptWhileSendingTheRunRequestSaysHowToReattach: a SIGTERM that
// lands while the run request is still being sent (a node may already have
// taken the run) exits 4 with the `serfdeploy watch ID` line. It said only
// "interrupted while sending the run request", which made
// cmd/serfdeploy.TestWatchReattaches fail about one run in four.
func TestInterruptWhileSendingTheRunRequestSaysHowToReattach(t *testing.T) {
	for _, batch := range []string{"", "1"} {
		f := cluster(finishedOK)
		ctx, cancel := context.WithCancel(context.Background())
		inner := f.answer
		f.answer = func(node, query string, payload []byte) []byte {
			if query == protocol.QueryPuppetRun {
				cancel() // the first node has the run; the CLI is stopped now
			}
			return inner(node, query, payload)
		}
		opts := qaOptions("d-int-" + batch)
		opts.Batch = batch
		res, err := Run(ctx, f, opts) // a deploy's rollout sends its batches' run requests the same way

		if exitCode(t, err) != ExitIncomplete || !strings.Contains(err.Error(), "serfdeploy watch d-int-"+batch) {
			t.Fatalf("batch %q: err %v", batch, err)
		}
		if res == nil || res.ExitCode != ExitIncomplete {
			t.Fatalf("batch %q: result %+v", batch, res)
		}
	}
}

// cancellingLog is a logging service whose read number cancelAt cancels
// the deploy's context (a SIGTERM while it is on the wire) and fails.
type cancellingLog struct {
	fakeLog
	cancelAt int
	cancel   context.CancelFunc
}

func (l *cancellingLog) Latest(ctx context.Context, id string, since, until time.Time) (map[string]protocol.RunRecord, error) {
	if l.calls+1 == l.cancelAt {
		l.calls++
		l.cancel()
		return nil, fmt.Errorf("%w: %w", logclient.ErrUnreachable, context.Canceled)
	}
	return l.fakeLog.Latest(ctx, id, since, until)
}

// TestInterruptDuringTheFinalReadIsExit4: the result and the error give
// one code, 4, when the final read of the logging service is cut short by
// an interrupt (it gave exit_code 5 in the result and 4 from the process).
func TestInterruptDuringTheFinalReadIsExit4(t *testing.T) {
	for _, at := range []int{1, 2} {
		f := cluster(finishedOK)
		ctx, cancel := context.WithCancel(context.Background())
		opts := qaOptions(fmt.Sprintf("final-read-%d", at))
		opts.LogWait = 3 * time.Second // the records never come: the reader reads again
		opts.Log = &cancellingLog{fakeLog: fakeLog{records: map[string]protocol.RunRecord{}}, cancelAt: at, cancel: cancel}
		res, err := Deploy(ctx, f, opts)
		if exitCode(t, err) != ExitIncomplete || res == nil || res.ExitCode != ExitIncomplete || !strings.Contains(err.Error(), "serfdeploy watch final-read-") {
			t.Fatalf("cancelled at read %d: err %v, result %+v", at, err, res)
		}
	}
}

// TestInterruptDuringThePreFlightReadIsExit4: nothing was deployed, and
// the code is the interrupt's, not the logging service's.
func TestInterruptDuringThePreFlightReadIsExit4(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	err := CheckLog(ctx, checkerFunc(func(context.Context) error { cancel(); return logclient.ErrUnreachable }), "pre-1")
	if exitCode(t, err) != ExitIncomplete || !strings.Contains(err.Error(), "nothing was deployed") {
		t.Fatalf("err %v", err)
	}
	err = CheckLog(context.Background(), checkerFunc(func(context.Context) error { return logclient.ErrUnreachable }), "pre-2")
	if !errors.Is(err, logclient.ErrUnreachable) {
		t.Fatalf("a service that is down is still the service: %v", err)
	}
}

type checkerFunc func(context.Context) error

func (c checkerFunc) Records(ctx context.Context, _ string, _, _ time.Time) ([]protocol.RunRecord, error) {
	return nil, c(ctx)
}

// TestStatusWithIDOfTheWholeCluster: `status --id ID` with no filter asks
// nodes that were no targets of the deploy; they have no record of it and
// say nothing of how it went. A wholly successful deploy exited 4.
func TestStatusWithIDOfTheWholeCluster(t *testing.T) {
	f := cluster(func(string) protocol.Status {
		st := finishedOK("")
		st.Targets = 2
		return st
	})
	f.polls = 5 // the qa agents answer finished
	inner := f.answer
	f.answer = func(n, q string, p []byte) []byte {
		if n == "prod1" {
			return statusJSON(protocol.Status{Node: n, Role: "agent", Phase: protocol.PhaseUnknown})
		}
		return inner(n, q, p)
	}
	rep, err := Status(context.Background(), f, serfrpc.Filter{}, "d19", time.Second)
	if err != nil || rep.ExitCode != ExitOK {
		t.Fatalf("every target finished: exit %+v, %v", rep, err)
	}
	// A target without its record: the count the records carry tells.
	f.answer = func(n, q string, p []byte) []byte {
		if n == "prod1" || n == "qa2" {
			return statusJSON(protocol.Status{Node: n, Role: "agent", Phase: protocol.PhaseUnknown})
		}
		return inner(n, q, p)
	}
	rep, err = Status(context.Background(), f, serfrpc.Filter{}, "d19", time.Second)
	if err != nil || rep.ExitCode != ExitIncomplete || !strings.Contains(rep.Note, "listed 2 target(s) and only 1") {
		t.Fatalf("a target without a record: %+v, %v", rep, err)
	}
}

// TestTimeoutHintsAtAMissingHandler: a target that never answered any
// query is most often a node whose serf runs no serfdeploy handler: the
// timeout says where to look. A graceful leave is not called a failure.
func TestTimeoutHintsAtAMissingHandler(t *testing.T) {
	f := cluster(finishedOK)
	f.override(func(n, _ string) ([]byte, bool) { return nil, n == "qa1" })
	opts := qaOptions("no-handler")
	opts.Timeout = 300 * time.Millisecond
	opts.MissedAfter = time.Minute // a timeout, then: both say it
	opts.PollInterval = 20 * time.Millisecond
	res, err := Deploy(context.Background(), f, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Nodes[0].Message, "serfdeploy handle") {
		t.Fatalf("qa1 %+v", res.Nodes[0])
	}
	if got := lostDetail(serfrpc.StatusLeft, time.Minute); strings.Contains(got, "failed") || !strings.Contains(got, "left") {
		t.Fatalf("a graceful leave: %q", got)
	}
}
