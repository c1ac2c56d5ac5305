package handler

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/serfcluster"
)

// TestTriggerCountsLateAnswersAsReached: a node whose handler queue is
// behind acknowledges the master's puppetrun query at once and answers
// after it ended (serf logs "reply for non-running query"). It has the
// request and its run starts, so the master's trigger counts it as reached
// and says its answer came late; it said "no answer" and left it out of
// the count the CLI waits for (100 of 100 at a time of churn).
func TestTriggerCountsLateAnswersAsReached(t *testing.T) {
	dir := t.TempDir()
	answer := `{"v":1,"node":"$SERF_SELF_NAME","result":"started"}`
	script := filepath.Join(dir, "handler.sh")
	// slow-01 stands for a node whose handler runs after the query's end.
	os.WriteFile(script, []byte("#!/bin/sh\ncat >/dev/null\n[ \"$SERF_SELF_NAME\" = slow-01 ] && sleep 3\necho \""+strings.ReplaceAll(answer, `"`, `\"`)+"\"\n"), 0o755)
	c := serfcluster.Start(t, serfcluster.Options{Handler: "query:" + protocol.QueryPuppetRun + "=" + script},
		serfcluster.NodeSpec{Name: "master-01"},
		serfcluster.NodeSpec{Name: "fast-01", Tags: map[string]string{"segment": "qa"}},
		serfcluster.NodeSpec{Name: "slow-01", Tags: map[string]string{"segment": "qa"}},
	)
	n := testNode(t, "/bin/true")
	n.cfg.Serf.RPCAddr = c.Node("master-01").RPCAddr
	n.cfg.Master.TriggerTimeout = time.Second
	summary, reached, listed, err := n.trigger(context.Background(), &protocol.Deploy{
		ID: "late-1", Module: "motd", Ref: "v1", Tags: map[string]string{"segment": "qa"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if reached != 2 || listed != 2 || !strings.Contains(summary, "1 started") || !strings.Contains(summary, "1 acknowledged, answer late") || strings.Contains(summary, "no answer") {
		t.Fatalf("summary %q, reached %d of %d", summary, reached, listed)
	}
}
