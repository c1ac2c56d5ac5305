package orchestrate

import (
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// Node states as the watcher tracks them. The final ones are the node's
// result.
const (
	StateWaiting = "waiting" // the run has not been requested or accepted yet
	// The node's own phases (protocol.Phase*), as it answers them.
	StatePending  = protocol.PhasePending  // accepted, puppet not started yet
	StateRunning  = protocol.PhaseRunning  // puppet is running
	StateFinished = protocol.PhaseFinished // puppet finished without failures
	StateFailed   = protocol.PhaseFailed   // puppet failed, or did not get a catalog
	StateBusy     = protocol.PhaseBusy     // another run held the node; ours did not happen
	StateDisabled = protocol.PhaseDisabled // puppet is administratively disabled there
	StateSkipped  = protocol.PhaseSkipped  // a master that was not a target, a batch not started, a policy's skip
	StateLost     = "lost"                 // serf reported the node failed or gone before it finished
	StateTimeout  = "timeout"              // still running or silent at the deadline
	StateMissed   = "missed"               // the node never received the run request
	// StateInterrupted: the CLI stopped watching (SIGINT/SIGTERM) before the
	// node finished; its run goes on.
	StateInterrupted = "interrupted"
	// StateStale: the run finished but applied other code than this deploy's
	// (another deploy of the module replaced it on the master meanwhile).
	StateStale = "stale"
)

// Final reports whether a state is a node's result: one of the phases in
// which a node's run ends (protocol.Done), or one the CLI decides.
func Final(state string) bool {
	switch state {
	case StateLost, StateTimeout, StateMissed, StateInterrupted, StateStale:
		return true
	}
	return protocol.Done(state)
}

// NodeResult is one target's outcome.
type NodeResult struct {
	Node  string `json:"node"`
	State string `json:"state"`
	protocol.Outcome
	// Source says where the final status came from: "log" (the logging
	// service) or "status" (the node's puppet-status answer).
	Source string `json:"source,omitempty"`
	// LogMissing is set when the node finished but the logging service has
	// no finished record for it.
	LogMissing bool `json:"log_missing,omitempty"`
	// JoinedLate is set for a node the CLI did not list as a target but that
	// answered for this deploy (the master's trigger reached it).
	JoinedLate bool `json:"joined_late,omitempty"`
	// Batch is the node's batch of a rollout, from 1; 0 without batches.
	Batch int `json:"batch,omitempty"`
	// Changes is the node's timeline: each state it was seen in, from
	// when; a report (`report ID`) has the logging service's times only.
	Changes []Change `json:"changes,omitempty"`
}

// Change is a node's state from a time on.
type Change struct {
	At    time.Time `json:"at"`
	State string    `json:"state"`
}

// MasterResult is a master's code sync.
type MasterResult struct {
	Node    string `json:"node"`
	Phase   string `json:"phase"`
	Message string `json:"message,omitempty"`
	Commit  string `json:"commit,omitempty"`
	// Reached is how many nodes answered the master's puppetrun trigger;
	// Listed, how many alive targets it sent it to.
	Reached int `json:"reached,omitempty"`
	Listed  int `json:"listed,omitempty"`
	// Targets is how many targets the deploy's CLI listed (from the
	// event the master recorded).
	Targets int `json:"targets,omitempty"`
	// batched: the master only synced, for a rollout whose CLI fires the
	// runs itself; synced is then its last phase.
	batched bool
}

// done reports whether the master has nothing more to do for the deploy.
func (m *MasterResult) done() bool {
	switch m.Phase {
	case protocol.PhaseTriggered, protocol.PhaseFailed, StateLost:
		return true
	}
	return m.batched && m.Phase == protocol.PhaseSynced
}

// ResultSchema is the version of Result's JSON (--format json,
// --result-file); it changes when a field changes meaning.
const ResultSchema = 2

// Result is the whole outcome of a deploy or a run.
type Result struct {
	SchemaVersion int             `json:"schema_version"`
	ID            string          `json:"id"`
	Kind          string          `json:"kind"` // "deploy" or "run"
	Module        string          `json:"module,omitempty"`
	Ref           string          `json:"ref,omitempty"`
	Environment   string          `json:"environment,omitempty"`
	Filter        string          `json:"filter"`
	Noop          bool            `json:"noop,omitempty"` // puppet ran with --noop: pending changes, nothing changed
	Build         *protocol.Build `json:"build,omitempty"`
	Masters       []MasterResult  `json:"masters,omitempty"`
	Nodes         []NodeResult    `json:"nodes"`
	Started       time.Time       `json:"started"`
	Finished      time.Time       `json:"finished"`
	// StatusSource says where final statuses came from, in words.
	StatusSource string `json:"status_source"`
	ExitCode     int    `json:"exit_code"`
	Outcome      string `json:"outcome"`
	// Fired says whether anything was sent to the fleet (the deploy event or
	// a run request). A pipeline may retry an exit 5 safely only when it is
	// false.
	Fired bool `json:"fired"`
	// Error is the one line that ended the command before the nodes decided
	// it (bad input, serf unreachable...), empty otherwise.
	Error string `json:"error,omitempty"`
	// Queries is how many serf queries the watch sent.
	Queries int `json:"queries"`
}

// Counts of nodes by state.
func (r *Result) Counts() map[string]int {
	c := map[string]int{}
	for _, n := range r.Nodes {
		c[n.State]++
	}
	return c
}
