package render

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

func TestTables(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	var b bytes.Buffer
	err := StatusTable(&b, &orchestrate.StatusReport{Nodes: []orchestrate.NodeStatus{
		{Node: "a", Status: &protocol.Status{Role: "agent", Last: &protocol.Status{ID: "d1", Phase: "finished", Finished: now.Add(-90 * time.Second).Unix()},
			Reason: protocol.ReasonStateError, Message: "read-only file system"}},
		{Node: "b", Problem: "no answer within 5s"},
	}}, now)
	out := b.String()
	for _, want := range []string{"LAST DEPLOY", "d1", "1m30s", "state_error: read-only file system", "no answer within 5s"} {
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("status table lacks %q (%v):\n%s", want, err, out)
		}
	}
	b.Reset()
	if err := MembersTable(&b, []serfrpc.Member{{Name: "m", Addr: "1.2.3.4:7946", Status: "alive", Tags: map[string]string{"z": "1", "a": "2"}}}); err != nil || !strings.Contains(b.String(), "a=2,z=1") {
		t.Fatalf("members table (%v):\n%s", err, b.String())
	}
	b.Reset()
	if err := LockTable(&b, &orchestrate.LockReport{Nodes: []orchestrate.LockNode{{Node: "n", Result: "disabled", Message: "by bob"}}}); err != nil || !strings.Contains(b.String(), "by bob") {
		t.Fatalf("lock table (%v):\n%s", err, b.String())
	}
}
