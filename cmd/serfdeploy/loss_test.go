package main

// Packet loss (docs/reliability.md): the fleet's serf agents and the CLI run
// in a network namespace of the test's own, where nftables drops 20 % of
// the UDP sent to the targets' serf ports, at random. (netem would be the
// usual tool, but not every kernel has it; nft's numgen is enough for
// random loss.) Serf's gossip, its events and its queries, is UDP; the
// CLI's RPC and serf's push-pull are TCP and are left alone.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// TestDeployUnderPacketLoss: five targets lose 20 % of the UDP sent to
// their serf ports. A deploy ends with every target finished, each run
// exactly once, long before --timeout; with one target's run failing, that
// node is failed (exit 1) and the others finished.
func TestDeployUnderPacketLoss(t *testing.T) {
	ns := lossNetNS(t)
	targets := []string{"agent-01", "agent-02", "agent-03", "agent-04", "agent-05"}
	runs := map[string]deployrig.StandInRun{}
	for i, a := range targets {
		runs[a] = deployrig.StandInRun{Duration: 2*time.Second + time.Duration(i)*500*time.Millisecond, Changed: true}
	}
	var agents []deployrig.Node
	for _, a := range targets {
		agents = append(agents, deployrig.Node{Name: a, Tags: map[string]string{"segment": "loss"}})
	}
	f, si := faultRig(t, deployrig.Options{NetNS: ns}, agents, runs)

	// Joined: now the loss, on the targets' serf ports only (not the
	// master's, so the answers reach the CLI's agent; not RPC, TCP).
	var ports []string
	for _, a := range targets {
		_, p, err := net.SplitHostPort(f.Cluster.Node(a).BindAddr)
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
	}
	if out, err := nft(ns, "add element inet loss targets { "+strings.Join(ports, ", ")+" }"); err != nil {
		t.Fatalf("adding the targets' ports to the loss: %v: %s", err, out)
	}

	// deploy deploys ref with id under the loss and checks what both
	// subtests want first: exit code want, and a state for every target.
	deploy := func(t *testing.T, id, ref string, want int) (orchestrate.Result, time.Duration) {
		t.Helper()
		r, res, took := nsDeploy(t, ns, f, id, ref)
		if r.Code != want {
			t.Fatalf("want exit %d under 20%% loss: %s", want, r)
		}
		if got := states(res); len(got) != len(targets) {
			t.Fatalf("states %v, want the %d targets", got, len(targets))
		}
		return res, took
	}

	t.Run("all finish", func(t *testing.T) {
		const id = "loss-all"
		res, took := deploy(t, id, "v1", orchestrate.ExitOK)
		for _, a := range targets {
			wantFinished(t, res, a)
		}
		wantRunsOnce(t, si, id, targets)
		wantQuick(t, took)
	})

	t.Run("one fails", func(t *testing.T) {
		runs["agent-03"] = deployrig.StandInRun{Duration: 3 * time.Second, Changed: true, FailBytes: 40}
		si, err := deployrig.WriteStandIn(filepath.Join(f.Dir, "standin-fail"), runs)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range f.Opts.Nodes {
			useStandIn(t, f, si, n.Name)
		}
		f.Repo.CommitModule("v2", f.Files, "")
		const id = "loss-one-fails"
		// Exit 1: agent-03's run fails.
		res, took := deploy(t, id, "v2", orchestrate.ExitFailed)
		for _, a := range targets {
			if a != "agent-03" {
				wantFinished(t, res, a)
				continue
			}
			n := nodeOf(res, a)
			if n.State != orchestrate.StateFailed || n.ExitCode == nil || *n.ExitCode != 1 || !strings.Contains(n.Message, "stand-in failure") {
				t.Fatalf("agent-03: want failed, exit 1, its Error line: %+v", n)
			}
		}
		wantRunsOnce(t, si, id, targets)
		if l := runsOf(t, si, id)["agent-03"][0]; l.Exit != 1 {
			t.Fatalf("agent-03's stand-in exited %d, want 1", l.Exit)
		}
		wantQuick(t, took)
	})
}

// wantRunsOnce checks the stand-in's ground truth: each target ran id
// exactly once, and nothing else ran it.
func wantRunsOnce(t *testing.T, si *deployrig.StandIn, id string, targets []string) {
	t.Helper()
	runs := runsOf(t, si, id)
	for _, a := range targets {
		if len(runs[a]) != 1 {
			t.Fatalf("%s ran %s %d time(s), want 1: %+v", a, id, len(runs[a]), runs)
		}
	}
	if len(runs) != len(targets) {
		t.Fatalf("runs of %s on %d node(s), want the %d targets: %+v", id, len(runs), len(targets), runs)
	}
}

// wantQuick checks that the deploy ended from the nodes' answers, not by
// waiting for --timeout (3m): the runs take 2 to 4 s, the CLI resends
// every 4 s (orchestrate/resend.go).
func wantQuick(t *testing.T, took time.Duration) {
	t.Helper()
	if limit := time.Minute; took > limit {
		t.Fatalf("the CLI exited %.1fs after the fire, want under %s (--timeout 3m)", took.Seconds(), limit)
	}
}

// nsDeploy deploys ref to the tag segment=loss with id, the CLI inside ns,
// and logs what the loss cost: time from fire to exit, queries, resends,
// packets dropped.
func nsDeploy(t *testing.T, ns string, f *deployrig.Rig, id, ref string) (deployrig.Result, orchestrate.Result, time.Duration) {
	t.Helper()
	seen0, dropped0 := lossCounters(t, ns)
	env := []string{"SERF_RPC_ADDR=" + f.Cluster.Node("master-01").RPCAddr, "NO_COLOR=1"}
	args := deployArgs("--ref", ref, "--tag", "segment=loss", "--id", id, "--format", "json")
	r := deployrig.Run(t, "ip", env, append([]string{"netns", "exec", ns, bin}, args...)...)
	exited := time.Now()
	res := decodeResult(t, r)
	took := exited.Sub(res.Started)
	seen, dropped := lossCounters(t, ns)
	t.Logf("%s under loss: exit %d %.1fs after the fire, %d queries, %d resend(s) by the CLI (%d event, %d run request), %d of %d UDP packets to the targets dropped; %v",
		id, r.Code, took.Seconds(), res.Queries, strings.Count(r.Stderr, " again"),
		strings.Count(r.Stderr, "firing the deploy event again"), strings.Count(r.Stderr, "sending them the run request again"),
		dropped-dropped0, seen-seen0, states(res))
	return r, res, took
}

var lossNetNSes atomic.Int32

// lossNetNS creates a network namespace with lo up and, in its nftables,
// an input chain that drops 20 % of the UDP to the ports of the set
// inet loss targets (empty: nothing is dropped yet). It is deleted when the
// test ends. The test is skipped where the kernel refuses either.
func lossNetNS(t *testing.T) string {
	t.Helper()
	ns := fmt.Sprintf("serfdeploy-loss-%d-%d", os.Getpid(), lossNetNSes.Add(1))
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("the kernel refuses a network namespace: `ip netns add %s`: %v: %s", ns, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", ns, err, out)
		}
	})
	if out, err := exec.Command("ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", ns, err, out)
	}
	for _, c := range []string{
		"add table inet loss",
		"add set inet loss targets { type inet_service; }",
		"add chain inet loss in { type filter hook input priority 0; policy accept; }",
		"add rule inet loss in udp dport @targets counter",
		"add rule inet loss in udp dport @targets numgen random mod 5 0 counter drop",
	} {
		if out, err := nft(ns, c); err != nil {
			t.Skipf("the kernel refuses the packet loss: `ip netns exec %s nft '%s'`: %v: %s", ns, c, err, strings.TrimSpace(string(out)))
		}
	}
	return ns
}

func nft(ns, command string) ([]byte, error) {
	return exec.Command("ip", "netns", "exec", ns, "nft", command).CombinedOutput()
}

var nftCounter = regexp.MustCompile(`counter packets (\d+) bytes \d+`)

// lossCounters reads the loss chain's counters: UDP packets to the targets
// seen, and dropped.
func lossCounters(t *testing.T, ns string) (seen, dropped int) {
	t.Helper()
	out, err := nft(ns, "list chain inet loss in")
	m := nftCounter.FindAllStringSubmatch(string(out), -1)
	if err != nil || len(m) != 2 {
		t.Fatalf("nft list chain inet loss in: %v:\n%s", err, out)
	}
	seen, _ = strconv.Atoi(m[0][1])
	dropped, _ = strconv.Atoi(m[1][1])
	return seen, dropped
}
