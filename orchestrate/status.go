package orchestrate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// NodeStatus is one node's answer to `serfdeploy status`.
type NodeStatus struct {
	Node       string           `json:"node"`
	SerfStatus string           `json:"serf_status"`
	Answered   bool             `json:"answered"`
	Problem    string           `json:"problem,omitempty"` // why there is no usable answer
	Status     *protocol.Status `json:"status,omitempty"`
}

// StatusReport is the whole answer of `serfdeploy status`.
type StatusReport struct {
	ID       string       `json:"id,omitempty"`
	Filter   string       `json:"filter"`
	Nodes    []NodeStatus `json:"nodes"`
	ExitCode int          `json:"exit_code"`
	// Note says why the exit code is not what the nodes' states alone
	// give (with --id: fewer records than the deploy's targets).
	Note string `json:"note,omitempty"`
}

// Status asks the matching alive nodes for their puppet state: with an id,
// that deploy's phase on each; without, idle or running and the last run.
// The exit code is 0 when every node answered, 4 when some did not, and
// with an id, 1 when that deploy failed on a node (as `deploy` would exit).
func Status(ctx context.Context, rpc RPC, f serfrpc.Filter, id string, queryTimeout time.Duration) (*StatusReport, error) {
	if err := CheckStatus(f, id); err != nil {
		return nil, err
	}
	if queryTimeout == 0 {
		queryTimeout = 5 * time.Second
	}
	payload, _ := json.Marshal(protocol.StatusRequest{ID: id})
	members, answers, err := askAll(ctx, rpc, f, protocol.QueryPuppetStatus, payload, queryTimeout)
	if err != nil {
		return nil, err
	}
	rep := &StatusReport{ID: id, Filter: f.String()}
	var states []NodeResult
	silent := false
	records, targets := 0, 0
	for _, m := range members {
		ns := NodeStatus{Node: m.Name, SerfStatus: m.Status}
		raw, ok := answers[m.Name]
		switch {
		case !ok:
			ns.Problem = fmt.Sprintf("no answer within %s", queryTimeout)
			silent = true
		default:
			var st protocol.Status
			if err := protocol.DecodeAnswerFrom(raw, m.Name, &st); err != nil {
				ns.Problem = fmt.Sprintf("unreadable answer: %q", protocol.Truncate(string(raw), 120))
				silent = true
				break
			}
			ns.Answered, ns.Status = true, &st
			if id != "" && hasRecord(&st) {
				// A node with no record of the id was no target of it:
				// it says nothing about how the deploy went.
				states = append(states, NodeResult{Node: m.Name, State: stateForStatus(&st)})
				targets = max(targets, st.Targets)
				if st.HasRun() {
					records++
				}
			}
		}
		rep.Nodes = append(rep.Nodes, ns)
	}
	if id != "" && anyAnswered(rep.Nodes) && nobodyKnows(rep.Nodes) {
		return nil, Errorf(ExitNoTargets, "no matching node has a record of deploy %s; check the id (`serfdeploy report %s` reads past deploys from the logging service)", id, id)
	}
	switch code := decideExit(states); {
	case code == ExitFailed:
		rep.ExitCode = ExitFailed
	case silent || code == ExitIncomplete:
		rep.ExitCode = ExitIncomplete
	}
	if id != "" && f.Empty() && records < targets && rep.ExitCode == ExitOK {
		// Asked of the whole cluster: every target of the deploy should
		// have a record of it.
		rep.ExitCode = ExitIncomplete
		rep.Note = fmt.Sprintf("the deploy listed %d target(s) and only %d node(s) have a record of it", targets, records)
	}
	return rep, nil
}

// hasRecord reports whether a node's answer for an id shows a record of
// it: a run, or a master's code sync.
func hasRecord(st *protocol.Status) bool {
	return st.HasRun() || st.HasSync()
}

// CheckStatus validates status's input before anything is connected to.
func CheckStatus(f serfrpc.Filter, id string) error {
	if id != "" {
		if err := protocol.ValidID(id); err != nil {
			return &Error{Code: ExitUsage, Err: err}
		}
	}
	return CheckFilter(f)
}

// stateForStatus maps an answer for the exit decision of `status --id`: a
// master that was not a target counts by its code sync; a node that never
// heard of the id counts as unfinished.
func stateForStatus(st *protocol.Status) string {
	if st.Phase == protocol.PhaseUnknown && st.Sync != "" {
		switch st.Sync {
		case protocol.PhaseTriggered:
			return StateFinished
		case protocol.PhaseFailed:
			return StateFailed
		}
		return StateRunning
	}
	if s := stateOf(st.Phase); s != StateWaiting {
		return s
	}
	return StateRunning
}

func anyAnswered(nodes []NodeStatus) bool {
	for _, n := range nodes {
		if n.Answered {
			return true
		}
	}
	return false
}

func nobodyKnows(nodes []NodeStatus) bool {
	for _, n := range nodes {
		if n.Status != nil && hasRecord(n.Status) {
			return false
		}
	}
	return true
}

// askAll sends one query to every alive node f matches and returns them
// with their answers by name. A node that has not answered is asked again
// until the timeout (--query-timeout): a one-shot command has no next poll,
// so it does not give up early on a node slow to receive the query (with a
// 1 s patience, a loaded machine's `disable` reported "no answer within 5s"
// after 1 s).
func askAll(ctx context.Context, rpc RPC, f serfrpc.Filter, query string, payload []byte, timeout time.Duration) ([]serfrpc.Member, map[string][]byte, error) {
	members, err := rpc.Members(ctx, f, serfrpc.StatusAlive)
	if err != nil {
		return nil, nil, infra(err)
	}
	if len(members) == 0 {
		return nil, nil, Errorf(ExitNoTargets, "no alive node matched %s; check the filters with `serfdeploy members`", f.String())
	}
	res, err := rpc.Query(ctx, serfrpc.Query{
		Name: query, Payload: payload,
		Filter: serfrpc.Filter{Nodes: names(members)}, Timeout: timeout, Expect: names(members), Resend: resendQuery,
	})
	if err != nil {
		// The agent went away or ctx ended: what came back is not the
		// fleet's answer.
		return nil, nil, interruptedOr(ctx, err, "asking the nodes")
	}
	answers := map[string][]byte{}
	for _, r := range res.Responses {
		answers[r.From] = r.Payload
	}
	return members, answers, nil
}
