package main

// Fault tests against real serf agents (docs/reliability.md): the logging
// service down for a whole deploy, replayed deploy events, a target's or
// the CLI's serf agent restarted mid-run, a target killed mid-run. The
// agents run a stand-in for Puppet (testkit/deployrig/standin.go) whose
// ground-truth file says how many runs each node really made.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/loki"
	"github.com/serfdeploy/serfdeploy/testkit/serfcluster"
)

// faultRig starts one master and the given agents (tags as given) whose
// puppet command is the stand-in with runs.
func faultRig(t *testing.T, opts deployrig.Options, agents []deployrig.Node, runs map[string]deployrig.StandInRun) (*deployrig.Rig, *deployrig.StandIn) {
	t.Helper()
	opts.Bin = bin
	opts.Nodes = append([]deployrig.Node{{Name: "master-01", Master: true}}, agents...)
	f := deployrig.Start(t, opts)
	si, err := deployrig.WriteStandIn(filepath.Join(f.Dir, "standin"), runs)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range opts.Nodes {
		useStandIn(t, f, si, n.Name)
	}
	return f, si
}

// useStandIn swaps the node's puppet command in its config (written by
// deployrig.Start) for the stand-in.
func useStandIn(t *testing.T, f *deployrig.Rig, si *deployrig.StandIn, name string) {
	t.Helper()
	path := filepath.Join(f.Dir, "config", name+".yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	const head, tail = "puppet:\n  command:\n", "  summary_file:"
	i := strings.Index(conf, head)
	j := strings.Index(conf, tail)
	if i < 0 || j < i {
		t.Fatalf("%s: no puppet command to replace:\n%s", path, conf)
	}
	var cmd strings.Builder
	r := strings.NewReplacer("{name}", name, "{summary_file}", f.Puppet[name].SummaryFile())
	for _, a := range si.Command() {
		fmt.Fprintf(&cmd, "    - %q\n", r.Replace(a))
	}
	conf = conf[:i] + head + cmd.String() + conf[j:]
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runsOf counts the stand-in's real runs of deploy id, by node.
func runsOf(t *testing.T, si *deployrig.StandIn, id string) map[string][]deployrig.TruthLine {
	t.Helper()
	lines, err := deployrig.ReadTruth(si.Truth)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]deployrig.TruthLine{}
	for _, l := range lines {
		if l.ID == id {
			out[l.Node] = append(out[l.Node], l)
		}
	}
	return out
}

// runRecord reads a node's record of its run of id.
func runRecord(t *testing.T, f *deployrig.Rig, node, id string) (phase string, exit *int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.StateDir(node), "runs", id, "run.json"))
	if err != nil {
		return "", nil
	}
	var rec struct {
		Phase    string
		ExitCode *int `json:"exit_code"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("%s's run record of %s: %v", node, id, err)
	}
	return rec.Phase, rec.ExitCode
}

// wantFinished checks a node's result: finished, Puppet exit 2 (the
// stand-in's "changes"), one change.
func wantFinished(t *testing.T, res orchestrate.Result, node string) {
	t.Helper()
	for _, n := range res.Nodes {
		if n.Node != node {
			continue
		}
		if n.State != orchestrate.StateFinished || n.ExitCode == nil || *n.ExitCode != 2 || n.Changed != 1 || n.Total != 8 {
			t.Fatalf("%s: want finished, exit 2, 1 of 8 changed: %+v", node, n)
		}
		return
	}
	t.Fatalf("%s is not in the result: %v", node, states(res))
}

func nodeOf(res orchestrate.Result, node string) orchestrate.NodeResult {
	for _, n := range res.Nodes {
		if n.Node == node {
			return n
		}
	}
	return orchestrate.NodeResult{}
}

// cliRun is a CLI started in the background.
type cliRun struct {
	done   chan struct{}
	res    deployrig.Result
	ended  time.Time
	err    error
	stderr *bytes.Buffer
}

// startCLI runs the binary in the background with a clean environment,
// against the serf agent at rpcAddr.
func startCLI(t *testing.T, rpcAddr string, args ...string) *cliRun {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "NO_COLOR=1", "SERF_RPC_ADDR=" + rpcAddr}
	var out bytes.Buffer
	c := &cliRun{done: make(chan struct{}), stderr: &bytes.Buffer{}}
	cmd.Stdout, cmd.Stderr = &out, c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	go func() {
		defer close(c.done)
		err := cmd.Wait()
		c.ended = time.Now()
		c.res = deployrig.Result{Stdout: out.String(), Stderr: c.stderr.String()}
		var exitErr *exec.ExitError
		switch {
		case errors.As(err, &exitErr):
			c.res.Code = exitErr.ExitCode()
		case err != nil:
			c.err = err
		}
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			cmd.Process.Kill()
			<-c.done
		}
	})
	t.Logf("serfdeploy %s: started at %s", strings.Join(args, " "), start.Format("15:04:05.000"))
	return c
}

// wait returns the CLI's result, failing after limit.
func (c *cliRun) wait(t *testing.T, limit time.Duration) deployrig.Result {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(limit):
		t.Fatalf("the CLI did not end within %s; stderr so far:\n%s", limit, c.stderr)
	}
	if c.err != nil {
		t.Fatalf("running serfdeploy: %v", c.err)
	}
	return c.res
}

// sigtermAgent sends SIGTERM to n's serf agent alone (as systemd's
// KillMode=process does) and waits for it to exit.
func sigtermAgent(t *testing.T, n *serfcluster.Node) {
	t.Helper()
	if !n.Terminate(15 * time.Second) {
		t.Fatalf("serf agent %s still runs 15s after SIGTERM", n.Name)
	}
}

// waitActive waits until node's run of id is under way.
func waitActive(t *testing.T, f *deployrig.Rig, node, id string) time.Time {
	t.Helper()
	waitFor(t, 40*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(f.StateDir(node), "active"))
		return strings.TrimSpace(string(b)) == id
	})
	return time.Now()
}

// handlerLogCount counts the lines of node's handler.log that contain s.
func handlerLogCount(f *deployrig.Rig, node, s string) int {
	file, err := os.Open(filepath.Join(f.StateDir(node), "handler.log"))
	if err != nil {
		return 0
	}
	defer file.Close()
	n := 0
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

var sentLine = regexp.MustCompile(`logging: sent (\d+) record\(s\)`)

// recordsSent sums what node's handler and workers told handler.log they
// pushed to the logging service.
func recordsSent(t *testing.T, f *deployrig.Rig, node string) int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(f.StateDir(node), "handler.log"))
	n := 0
	for _, m := range sentLine.FindAllStringSubmatch(string(b), -1) {
		k, _ := strconv.Atoi(m[1])
		n += k
	}
	return n
}

// lokiLines counts, straight from Loki's query API, the lines of deploy id
// by node and event ("started", "finished").
func lokiLines(t *testing.T, lokiURL, id string) map[string]int {
	t.Helper()
	q := url.Values{
		"query":     {`{job="serfdeploy"} |= ` + strconv.Quote(`"deploy_id":"`+id+`"`)},
		"start":     {strconv.FormatInt(time.Now().Add(-time.Hour).UnixNano(), 10)},
		"end":       {strconv.FormatInt(time.Now().Add(time.Minute).UnixNano(), 10)},
		"limit":     {"1000"},
		"direction": {"forward"},
	}
	resp, err := http.Get(lokiURL + "/loki/api/v1/query_range?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string
		Data   struct {
			Result []struct {
				Stream map[string]string
				Values [][2]string
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("Loki query_range: HTTP %d, %v, %+v", resp.StatusCode, err, body)
	}
	out := map[string]int{}
	for _, s := range body.Data.Result {
		for _, v := range s.Values {
			var rec protocol.RunRecord
			if err := json.Unmarshal([]byte(v[1]), &rec); err != nil || rec.DeployID != id {
				t.Fatalf("a line of %s in Loki that is not its record: %q", id, v[1])
			}
			out[rec.Node+" "+rec.Event]++
		}
	}
	return out
}

func spooled(f *deployrig.Rig, node string) int {
	names, _ := filepath.Glob(filepath.Join(f.StateDir(node), "spool", "*.json"))
	return len(names)
}

var qaAgents = []deployrig.Node{
	{Name: "agent-01", Tags: map[string]string{"segment": "qa"}},
	{Name: "agent-02", Tags: map[string]string{"segment": "qa"}},
}

// TestFaultLokiDownWholeDeployThenBack: the nodes log to a Loki that is
// down for the whole deploy. The deploy ends from the nodes' status
// answers (exit 0, both finished); the records wait in the spools. Once
// Loki is back at that address, the spools are flushed through the product
// (the handlers' flush, started by the next puppet-status query), and
// `serfdeploy report` reads every node finished, exit 0, each record in
// Loki exactly once.
func TestFaultLokiDownWholeDeployThenBack(t *testing.T) {
	lk := loki.Start(t)
	lk.Stop()
	f, si := faultRig(t, deployrig.Options{LogURL: lk.URL}, qaAgents, map[string]deployrig.StandInRun{
		"agent-01": {Duration: time.Second, Changed: true},
		"agent-02": {Duration: time.Second, Changed: true},
	})
	const id = "fault-loki-down"
	r := f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", id, "--format", "json")...)
	if r.Code != orchestrate.ExitOK || !strings.Contains(r.Stderr, "no logging service configured") {
		t.Fatalf("deploy while the nodes' Loki is down: %s", r)
	}
	res := decodeResult(t, r)
	if got := states(res); len(got) != 2 {
		t.Fatalf("states %v", got)
	}
	for _, node := range []string{"agent-01", "agent-02"} {
		wantFinished(t, res, node)
		if runs := runsOf(t, si, id)[node]; len(runs) != 1 || runs[0].Exit != 2 {
			t.Fatalf("%s ran %s %d time(s): %+v", node, id, len(runs), runs)
		}
		// started and finished wait on the node (the worker spools
		// finished just after saving the result the CLI saw).
		waitFor(t, 10*time.Second, func() bool { return spooled(f, node) == 2 })
	}

	// Down a while longer: the nodes' retries back off (up to 16 s apart).
	time.Sleep(6 * time.Second)
	for _, node := range []string{"agent-01", "agent-02"} {
		if n := spooled(f, node); n != 2 {
			t.Fatalf("%s's spool holds %d record(s) while Loki is down, want 2", node, n)
		}
	}
	// Loki takes pushes before it answers /ready: watch the spools empty
	// from the moment its process starts.
	emptied := make(chan time.Time, 1)
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		for {
			if spooled(f, "agent-01")+spooled(f, "agent-02") == 0 {
				emptied <- time.Now()
				return
			}
			select {
			case <-stopWatch:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	restarted := time.Now()
	lk.Restart(t)
	back := time.Now()
	// The product's own path: a puppet-status query makes each handler
	// start a flush worker for what waits in its spool.
	if st := f.CLI(nil, "status", "--tag", "segment=qa"); st.Code != orchestrate.ExitOK {
		t.Fatalf("status: %s", st)
	}
	logEnv := []string{"SERFDEPLOY_LOG_URL=" + lk.URL}
	var rep deployrig.Result
	deadline := time.Now().Add(40 * time.Second)
	for {
		rep = deployrig.Run(t, bin, append(logEnv, "SERF_RPC_ADDR="+deadAddr(t)), "report", id, "--format", "json")
		if rep.Code == orchestrate.ExitOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spooled records did not reach Loki within 40s of its return: %s\nspools: agent-01 %d, agent-02 %d",
				rep, spooled(f, "agent-01"), spooled(f, "agent-02"))
		}
		time.Sleep(time.Second)
	}
	select {
	case at := <-emptied:
		t.Logf("spools empty %.1fs after Loki's process started (it answered /ready after %.1fs); report exit 0 %.1fs after /ready",
			at.Sub(restarted).Seconds(), back.Sub(restarted).Seconds(), time.Since(back).Seconds())
	case <-time.After(5 * time.Second):
		t.Fatalf("report says finished but the spools are not empty: agent-01 %d, agent-02 %d", spooled(f, "agent-01"), spooled(f, "agent-02"))
	}
	res = decodeResult(t, rep)
	if got := states(res); len(got) != 2 || res.ExitCode != orchestrate.ExitOK {
		t.Fatalf("report: %s", rep)
	}
	for _, node := range []string{"agent-01", "agent-02"} {
		wantFinished(t, res, node)
		if n := spooled(f, node); n != 0 {
			t.Fatalf("%s's spool still holds %d record(s)", node, n)
		}
	}
	for _, n := range res.Nodes {
		if n.Source != "log" {
			t.Fatalf("%s's result is not from the logging service: %+v", n.Node, n)
		}
	}
	// Exactly once: in Loki, and as the nodes sent them (Loki would
	// silently drop a byte-identical second push).
	lines := lokiLines(t, lk.URL, id)
	want := map[string]int{"agent-01 started": 1, "agent-01 finished": 1, "agent-02 started": 1, "agent-02 finished": 1}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Fatalf("lines of %s in Loki: %v, want %v", id, lines, want)
	}
	for _, node := range []string{"agent-01", "agent-02"} {
		b, _ := os.ReadFile(filepath.Join(f.StateDir(node), "handler.log"))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "logging:") || strings.Contains(l, "run ") {
				t.Logf("%s", l)
			}
		}
		if n := recordsSent(t, f, node); n != 2 {
			t.Fatalf("%s's handler.log says it sent %d record(s), want 2", node, n)
		}
	}
}

// TestFaultReplayedDeployEvent: the same deploy event delivered again (two
// `serf event` with the same payload), then the master's and an agent's
// serf agent leaving and rejoining with -replay, which makes serf hand the
// old events to the handler again. Puppet runs exactly once per deploy id
// on each node.
func TestFaultReplayedDeployEvent(t *testing.T) {
	f, si := faultRig(t, deployrig.Options{}, qaAgents, map[string]deployrig.StandInRun{
		"agent-01": {Duration: 500 * time.Millisecond, Changed: true},
		"agent-02": {Duration: 500 * time.Millisecond, Changed: true},
	})
	const id = "fault-replay"
	r := f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", id, "--format", "json")...)
	if r.Code != orchestrate.ExitOK {
		t.Fatalf("deploy: %s", r)
	}
	res := decodeResult(t, r)
	wantFinished(t, res, "agent-01")
	wantFinished(t, res, "agent-02")
	once := func(when string) {
		t.Helper()
		runs := runsOf(t, si, id)
		for _, node := range []string{"agent-01", "agent-02"} {
			if len(runs[node]) != 1 {
				t.Fatalf("%s: %s ran %s %d time(s)", when, node, id, len(runs[node]))
			}
			if phase, exit := runRecord(t, f, node, id); phase != "finished" || exit == nil || *exit != 2 {
				t.Fatalf("%s: %s's record of %s: %s, exit %v", when, node, id, phase, exit)
			}
		}
		if len(runs) != 2 {
			t.Fatalf("%s: runs of %s on %d node(s): %v", when, id, len(runs), runs)
		}
	}
	once("after the deploy")

	// The event exactly as the CLI fired it (no build context, no
	// environment given), twice, from another node's agent.
	payload, err := protocol.EncodeDeploy(&protocol.Deploy{ID: id, Module: "motd", Ref: "v1", Tags: map[string]string{"segment": "qa"}, WaitSec: 180, Targets: 2}) // --timeout 3m, --on-running wait; 2 qa targets
	if err != nil {
		t.Fatal(err)
	}
	var sync struct{ Deploy protocol.Deploy }
	b, err := os.ReadFile(filepath.Join(f.StateDir("master-01"), "runs", id, "sync.json"))
	if err != nil || json.Unmarshal(b, &sync) != nil {
		t.Fatalf("master's sync record: %v %s", err, b)
	}
	if sync.Deploy.Environment = ""; !bytes.Equal(mustJSON(t, sync.Deploy), payload) {
		t.Fatalf("the payload fired here %s is not the CLI's %s", payload, mustJSON(t, sync.Deploy))
	}
	const repeat = "deploy " + id + ": already handled"
	for i := 0; i < 2; i++ {
		out, err := exec.Command("serf", "event", "-rpc-addr", f.Cluster.Node("agent-02").RPCAddr, "-coalesce=false", protocol.EventDeploy, string(payload)).CombinedOutput()
		if err != nil {
			t.Fatalf("serf event: %v: %s", err, out)
		}
	}
	waitFor(t, 20*time.Second, func() bool { return handlerLogCount(f, "master-01", repeat) >= 2 })
	time.Sleep(2 * time.Second) // a run the repeat started would be under way
	once("after the event was fired twice more")
	repeats := handlerLogCount(f, "master-01", repeat)

	// The master leaves and rejoins with -replay: serf hands it the
	// buffered deploy events again.
	master := f.Cluster.Node("master-01")
	master.Stop()
	f.Cluster.Restart(t, master, f.Cluster.Node("agent-01"), true)
	waitFor(t, 20*time.Second, func() bool { return handlerLogCount(f, "master-01", repeat) > repeats })
	replayed := handlerLogCount(f, "master-01", repeat) - repeats
	// An agent too (it ignores deploy events; a master's trigger is what
	// would make it run).
	a1 := f.Cluster.Node("agent-01")
	a1.Stop()
	f.Cluster.Restart(t, a1, master, true)
	time.Sleep(3 * time.Second)
	once("after the master and agent-01 rejoined with -replay")
	t.Logf("deploy event of %s handled by the master: 1 + %d repeats fired + %d replayed on rejoin; runs per node: 1",
		id, repeats, replayed)

	// The fleet agrees: status of the id is exit 0, and re-attaching
	// follows the runs without a new one.
	if st := f.CLI(nil, "status", "--id", id, "--tag", "segment=qa"); st.Code != orchestrate.ExitOK {
		t.Fatalf("status --id after the replays: %s", st)
	}
	r = f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", id, "--format", "json")...)
	if r.Code != orchestrate.ExitOK || !strings.Contains(r.Stderr, "following those runs") {
		t.Fatalf("the same deploy again: %s", r)
	}
	once("after the same deploy was asked again")
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFaultNodeAgentRestartMidRun: a target's serf agent is stopped during
// its 6 s run and started again with the same name, ports and directory.
// The run is a detached worker: it completes, and the CLI (watching all
// along) reports the node finished, exit 0.
func TestFaultNodeAgentRestartMidRun(t *testing.T) {
	for _, how := range []string{"leave", "sigterm"} {
		t.Run(how, func(t *testing.T) {
			f, si := faultRig(t, deployrig.Options{}, qaAgents, map[string]deployrig.StandInRun{
				"agent-01": {Duration: 6 * time.Second, Changed: true},
				"agent-02": {Duration: time.Second, Changed: true},
			})
			id := "fault-restart-" + how
			cli := startCLI(t, f.Cluster.Node("master-01").RPCAddr, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", id, "--format", "json")...)
			waitActive(t, f, "agent-01", id)
			time.Sleep(time.Second)
			a1 := f.Cluster.Node("agent-01")
			stopped := time.Now()
			if how == "leave" {
				a1.Stop() // `serf leave`: the others list it left
			} else {
				sigtermAgent(t, a1) // serf's default: no leave, the others see it fail
			}
			down := time.Since(stopped)
			f.Cluster.Restart(t, a1, f.Cluster.Node("master-01"), false)
			t.Logf("agent-01's agent %s took %.1fs, back alive %.1fs after the stop", how, down.Seconds(), time.Since(stopped).Seconds())
			r := cli.wait(t, 45*time.Second)
			res := decodeResult(t, r)
			t.Logf("CLI: exit %d, %v, %.1fs after the stop", r.Code, states(res), cli.ended.Sub(stopped).Seconds())

			// Ground truth: the run went on and completed, once.
			waitFor(t, 20*time.Second, func() bool { p, _ := runRecord(t, f, "agent-01", id); return p == "finished" })
			if runs := runsOf(t, si, id); len(runs["agent-01"]) != 1 || runs["agent-01"][0].Exit != 2 || len(runs["agent-02"]) != 1 {
				t.Fatalf("runs of %s: %+v", id, runs)
			}
			wantFinished(t, res, "agent-02")
			if r.Code == orchestrate.ExitIncomplete && states(res)["agent-01"] == orchestrate.StateLost {
				t.Fatalf("agent-01's run completed (exit 2, once) but the CLI reported it %q (%s), exit 4, %.1fs after its agent was stopped (%s) and restarted within %.1fs: orchestrate/watch.go (*watch).poll/lose make any non-alive serf status final at once",
					nodeOf(res, "agent-01").State, nodeOf(res, "agent-01").Message, cli.ended.Sub(stopped).Seconds(), how, down.Seconds())
			}
			if r.Code != orchestrate.ExitOK {
				t.Fatalf("want exit 0: %s", r)
			}
			wantFinished(t, res, "agent-01")
		})
	}
}

// TestFaultCLIAgentRestartMidDeploy: the serf agent the CLI talks to is
// stopped mid-deploy and started again at the same RPC address. The CLI
// reconnects, or exits 5 naming the deploy id and how to re-attach; either
// way the result stays right.
func TestFaultCLIAgentRestartMidDeploy(t *testing.T) {
	agents := append([]deployrig.Node{{Name: "ci-01", Tags: map[string]string{"segment": "ci"}}}, qaAgents...)
	f, si := faultRig(t, deployrig.Options{}, agents, map[string]deployrig.StandInRun{
		"agent-01": {Duration: 6 * time.Second, Changed: true},
		"agent-02": {Duration: 6 * time.Second, Changed: true},
	})
	const id = "fault-cli-agent"
	ci := f.Cluster.Node("ci-01")
	args := deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", id, "--format", "json")
	cli := startCLI(t, ci.RPCAddr, args...)
	waitActive(t, f, "agent-01", id)
	stopped := time.Now()
	ci.Stop()
	f.Cluster.Restart(t, ci, f.Cluster.Node("master-01"), false)
	back := time.Now()
	t.Logf("the CLI's agent was back %.1fs after the stop", back.Sub(stopped).Seconds())
	r := cli.wait(t, 45*time.Second)
	res := decodeResult(t, r)
	t.Logf("CLI: exit %d %.1fs after its agent's stop, %v, error %q, outcome %q", r.Code, cli.ended.Sub(stopped).Seconds(), states(res), res.Error, res.Outcome)

	// The runs are untouched by the CLI's agent: once each, finished.
	for _, node := range []string{"agent-01", "agent-02"} {
		waitFor(t, 20*time.Second, func() bool { p, _ := runRecord(t, f, node, id); return p == "finished" })
	}
	switch r.Code {
	case orchestrate.ExitOK:
		wantFinished(t, res, "agent-01")
		wantFinished(t, res, "agent-02")
	case orchestrate.ExitInfra:
		if !res.Fired || res.ExitCode != orchestrate.ExitInfra || res.ID != id || !strings.Contains(res.Outcome, "went away") {
			t.Fatalf("result of the exit 5: %+v", res)
		}
		for _, n := range res.Nodes {
			if orchestrate.Final(n.State) && n.State != orchestrate.StateFinished {
				t.Fatalf("the exit 5 gave %s a wrong final state: %+v", n.Node, n)
			}
		}
		// Re-attach as a pipeline would, through the restarted agent.
		again := deployrig.Run(t, bin, []string{"SERF_RPC_ADDR=" + ci.RPCAddr, "NO_COLOR=1"}, args...)
		if again.Code != orchestrate.ExitOK || !strings.Contains(again.Stderr, "following those runs") {
			t.Fatalf("re-attaching with --id %s: %s", id, again)
		}
		ra := decodeResult(t, again)
		wantFinished(t, ra, "agent-01")
		wantFinished(t, ra, "agent-02")
		// Stderr after the id line must name the id and how to follow it
		// again (`deploy --id ID` with the same request, or `watch ID`).
		// Its own lines, not the progress lines.
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		var said []string
		for _, l := range lines[1:] {
			if strings.HasPrefix(l, "serfdeploy: ") {
				said = append(said, l)
			}
		}
		rest := strings.Join(said, "\n")
		var bugs []string
		if !strings.Contains(rest, id) || !(strings.Contains(rest, "--id") || strings.Contains(rest, "watch")) {
			bugs = append(bugs, fmt.Sprintf("stderr does not say how to re-attach (after the id line %q and the progress lines it says only %q)", lines[0], rest))
		}
		if res.Error == "" {
			bugs = append(bugs, fmt.Sprintf("the result's error field is empty (outcome %q)", res.Outcome))
		}
		if len(bugs) > 0 {
			t.Fatalf("the CLI exits 5 (fired: true) %.1fs after its serf agent is stopped mid-deploy, without reconnecting to the agent, back %.1fs after the stop at the same address; %s. Re-attaching with --id %s worked (exit 0, no new run)",
				cli.ended.Sub(stopped).Seconds(), back.Sub(stopped).Seconds(), strings.Join(bugs, "; "), id)
		}
	default:
		t.Fatalf("want exit 0 (reconnected) or 5 (naming how to re-attach): %s", r)
	}
	if runs := runsOf(t, si, id); len(runs) != 2 || len(runs["agent-01"]) != 1 || len(runs["agent-02"]) != 1 {
		t.Fatalf("runs of %s: %+v", id, runs)
	}
}

// TestFaultTargetKilled: a target's serf agent is SIGKILLed mid-run (a
// crashed machine, as serf sees it). It is reported lost from serf's
// failure detection, not after its run, and the deploy exits 4.
func TestFaultTargetKilled(t *testing.T) {
	f, si := faultRig(t, deployrig.Options{}, qaAgents, map[string]deployrig.StandInRun{
		"agent-01": {Duration: 15 * time.Second, Changed: true},
		"agent-02": {Duration: time.Second, Changed: true},
	})
	const id = "fault-killed"
	cli := startCLI(t, f.Cluster.Node("master-01").RPCAddr, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", id, "--format", "json")...)
	waitActive(t, f, "agent-01", id)
	time.Sleep(time.Second)
	f.Cluster.Node("agent-01").Kill()
	killed := time.Now()
	r := cli.wait(t, 45*time.Second)
	took := cli.ended.Sub(killed)
	if r.Code != orchestrate.ExitIncomplete {
		t.Fatalf("want exit 4: %s", r)
	}
	res := decodeResult(t, r)
	if got := states(res); len(got) != 2 || got["agent-01"] != orchestrate.StateLost {
		t.Fatalf("states %v", got)
	}
	wantFinished(t, res, "agent-02")
	if phase, _ := runRecord(t, f, "agent-01", id); phase != "running" {
		t.Fatalf("agent-01's run was %q when the CLI exited: lost must come from serf's failure detection, not the run's end", phase)
	}
	t.Logf("agent-01 killed mid-run: CLI exited 4 %.1fs after the SIGKILL (%s)", took.Seconds(), nodeOf(res, "agent-01").Message)
	// The worker outlives its agent and finishes, once.
	waitFor(t, 30*time.Second, func() bool { p, _ := runRecord(t, f, "agent-01", id); return p == "finished" })
	if runs := runsOf(t, si, id); len(runs["agent-01"]) != 1 || runs["agent-01"][0].Exit != 2 || len(runs["agent-02"]) != 1 {
		t.Fatalf("runs of %s: %+v", id, runs)
	}
}
