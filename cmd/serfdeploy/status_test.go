package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/internal/iostreams"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// A node whose state disk is full or read-only says so in its status
// answer; `serfdeploy status` shows it on the node's line.
func TestStatusShowsANodesStateError(t *testing.T) {
	var out bytes.Buffer
	env := &cliEnv{io: iostreams.Test(nil, &out, &out), getenv: func(string) string { return "" }}
	msg := "state directory /var/lib/serfdeploy cannot be written: write .probe-1: no space left on device"
	rep := &orchestrate.StatusReport{Nodes: []orchestrate.NodeStatus{{Node: "agent-01", Answered: true,
		Status: &protocol.Status{V: 1, Node: "agent-01", Role: "agent", Phase: "idle", Reason: protocol.ReasonStateError, Message: msg}}}}
	if err := printStatus(env, rep); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "agent-01 ") && strings.Contains(line, "state_error: "+msg) {
			return
		}
	}
	t.Fatalf("the node's state error is not on its line:\n%s", out.String())
}
