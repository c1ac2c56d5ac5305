package orchestrate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// LockNode is one node's answer to `serfdeploy disable` or `enable`.
type LockNode struct {
	Node    string `json:"node"`
	Result  string `json:"result"` // protocol.Lock*, or "no answer"
	Message string `json:"message,omitempty"`
}

// LockReport is the whole answer of `serfdeploy disable` or `enable`.
type LockReport struct {
	Action   string     `json:"action"` // "disable" or "enable"
	Filter   string     `json:"filter"`
	Nodes    []LockNode `json:"nodes"`
	ExitCode int        `json:"exit_code"`
}

// SetPuppetLock disables Puppet on the alive nodes f matches (message says
// why) or, with an empty message, enables it again. A filter is required:
// a slip must not disable the whole fleet. Exit 0 when every node did it
// (or was so already), 1 when one could not, 4 when one did not answer.
func SetPuppetLock(ctx context.Context, rpc RPC, f serfrpc.Filter, disable bool, message string, timeout time.Duration) (*LockReport, error) {
	action, query := "enable", protocol.QueryPuppetEnable
	if disable {
		action, query = "disable", protocol.QueryPuppetDisable
		if err := protocol.ValidDisableMessage(message); err != nil {
			return nil, Errorf(ExitUsage, "--message: %w", err)
		}
	}
	if f.Empty() {
		return nil, Errorf(ExitUsage, "%s needs --tag or --node: it never acts on the whole fleet by default", action)
	}
	if err := CheckFilter(f); err != nil {
		return nil, err
	}
	payload, _ := json.Marshal(protocol.LockRequest{Message: message})
	members, answers, err := askAll(ctx, rpc, f, query, payload, timeout)
	if err != nil {
		return nil, err
	}
	rep := &LockReport{Action: action, Filter: f.String()}
	for _, m := range members {
		n := LockNode{Node: m.Name, Result: "no answer", Message: fmt.Sprintf("no answer within %s", timeout)}
		var a protocol.LockAnswer
		if raw, ok := answers[m.Name]; ok {
			if protocol.DecodeAnswerFrom(raw, m.Name, &a) != nil || a.Result == "" {
				n.Result, n.Message = protocol.LockError, fmt.Sprintf("unreadable answer: %q", protocol.Truncate(string(raw), 120))
			} else {
				n.Result, n.Message = a.Result, protocol.OneLine(a.Message, 300)
			}
		}
		switch {
		case n.Result == protocol.LockError:
			rep.ExitCode = ExitFailed
		case n.Result == "no answer" && rep.ExitCode == ExitOK:
			rep.ExitCode = ExitIncomplete
		}
		rep.Nodes = append(rep.Nodes, n)
	}
	return rep, nil
}
