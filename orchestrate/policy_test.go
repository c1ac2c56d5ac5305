package orchestrate

import (
	"strings"
	"testing"

	"github.com/serfdeploy/serfdeploy/protocol"
)

func TestExitWithPendingChanges(t *testing.T) {
	pending := NodeResult{State: StateFinished, Outcome: protocol.Outcome{Pending: 3}}
	clean := NodeResult{State: StateFinished}
	for _, c := range []struct {
		nodes []NodeResult
		want  int
	}{
		{[]NodeResult{clean, clean}, ExitOK},
		{[]NodeResult{clean, pending}, ExitPending},
		{[]NodeResult{pending, {State: StateLost}}, ExitIncomplete},
		{[]NodeResult{pending, {State: StateFailed}}, ExitFailed},
	} {
		if got := decideExit(c.nodes); got != c.want {
			t.Errorf("%+v: exit %d, want %d", c.nodes, got, c.want)
		}
	}
}

func TestPoliciesSkipDisabledAndBusy(t *testing.T) {
	nodes := []NodeResult{{Node: "a", State: StateDisabled, Outcome: protocol.Outcome{Reason: protocol.ReasonDisabled, Message: "by bob"}}, {Node: "b", State: StateBusy}}
	applyPolicies(nodes, &Options{OnDisabled: PolicySkip, OnRunning: PolicyFail})
	if nodes[0].State != StateSkipped || nodes[0].Message != "by bob" || nodes[1].State != StateBusy || decideExit(nodes) != ExitFailed {
		t.Fatalf("%+v", nodes)
	}
	applyPolicies(nodes, &Options{OnRunning: PolicySkip})
	if nodes[1].State != StateSkipped || nodes[1].Reason != StateBusy || decideExit(nodes) != ExitOK {
		t.Fatalf("%+v", nodes)
	}
}

func TestVersionMismatch(t *testing.T) {
	applied := "motd=0123456789abcdef ntp=fedcba9876543210"
	for expected, wantMatch := range map[string]bool{
		"motd=0123456789":                    true,
		"motd=0123456789abcdef ntp=fedcba98": true,
		"motd=ffff":                          false,
		"apache=0123":                        false,
		applied:                              true,
		"1795659420":                         false,
	} {
		msg := versionMismatch(applied, expected)
		if (msg == "") != wantMatch {
			t.Errorf("expect %q: %q", expected, msg)
		}
	}
	if msg := versionMismatch(applied, "apache=0123"); !strings.Contains(msg, "no serfdeploy version of apache") {
		t.Errorf("missing module: %q", msg)
	}
}
