package deployrig

import (
	"os/exec"
	"testing"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/serfcluster"
)

// TestHandlerRunsOnlyForItsEvents: the rig's agents fork `serfdeploy
// handle` for serfdeploy's event and queries alone. Before the filter they
// forked it for every member event too: each join, leave and update, on
// every node, one at a time (issue 22).
func TestHandlerRunsOnlyForItsEvents(t *testing.T) {
	bin, err := BuildBinary(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := Start(t, Options{Bin: bin, Nodes: []Node{{Name: "master-01", Master: true}, {Name: "agent-01"}, {Name: "agent-02"}}})
	f.Cluster.Node("agent-02").Stop() // a leave on the others
	f.Cluster.WaitStatus(t, f.Cluster.Node("master-01"), "agent-02", "left", 0)
	rpc := f.Cluster.Node("master-01").RPCAddr
	for _, args := range [][]string{
		{"event", "-rpc-addr", rpc, "-coalesce=false", "someone-elses", "x"},
		{"query", "-rpc-addr", rpc, "-timeout", "2s", "someone-elses", "x"},
		{"query", "-rpc-addr", rpc, "-timeout", "2s", protocol.QueryPuppetStatus, "{}"},
	} {
		if out, err := exec.Command("serf", args...).CombinedOutput(); err != nil {
			t.Fatalf("serf %v: %v\n%s", args, err, out)
		}
	}
	for _, name := range []string{"master-01", "agent-01"} {
		runs, err := serfcluster.HandlerRuns(f.Cluster.Node(name).LogPath, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(runs) != 1 || runs["query"] != 1 {
			t.Errorf("%s ran its handler for %v, want for the one puppet-status query only", name, runs)
		}
	}
}
