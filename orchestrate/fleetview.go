package orchestrate

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// The fleet view (`serfdeploy summary` and `count`, like `mco puppet
// summary` and `count`): one puppet-status query with an empty id to every
// alive matching node, read for Puppet's own state there, whoever ran
// Puppet (serfdeploy, the agent daemon, cron, a person).

// Fleet states of a node (FleetNode.State), one each: a node applying a
// catalog counts as running even when disabled (disabling does not stop a
// run under way).
const (
	FleetRunning  = "running"
	FleetIdle     = "idle"
	FleetDisabled = "disabled"
	FleetNoAnswer = "no answer"
)

// FleetNode is one node's answer as the fleet view reads it.
type FleetNode struct {
	Node  string `json:"node"`
	State string `json:"state"`
	// Run is the deploy id of serfdeploy's run in progress there.
	Run string `json:"run,omitempty"`
	// Disabled is why Puppet is disabled there, if it is.
	Disabled string `json:"disabled,omitempty"`
	// Problem is why there is no answer.
	Problem string `json:"problem,omitempty"`
	// Daemon is the agent daemon's state (protocol.DaemonRunning,
	// DaemonStopped), empty when the node does not know or did not say.
	Daemon string `json:"daemon,omitempty"`
	// Puppet is the node's Puppet state as it sent it; nil without an
	// answer. Its Error says why it has no figures.
	Puppet *protocol.PuppetState `json:"puppet,omitempty"`
	// Last is serfdeploy's own last run on the node.
	Last *protocol.Status `json:"-"`
}

// askFleet asks every alive node f matches for its state now.
func askFleet(ctx context.Context, rpc RPC, f serfrpc.Filter, timeout time.Duration) ([]FleetNode, error) {
	if err := CheckFilter(f); err != nil {
		return nil, err
	}
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	payload, _ := json.Marshal(protocol.StatusRequest{})
	members, answers, err := askAll(ctx, rpc, f, protocol.QueryPuppetStatus, payload, timeout)
	if err != nil {
		return nil, err
	}
	nodes := make([]FleetNode, 0, len(members))
	for _, m := range members {
		nodes = append(nodes, fleetNode(m.Name, answers[m.Name], timeout))
	}
	slices.SortFunc(nodes, func(a, b FleetNode) int { return cmp.Compare(a.Node, b.Node) })
	return nodes, nil
}

// fleetNode reads one node's answer (nil: it sent none).
func fleetNode(name string, raw []byte, timeout time.Duration) FleetNode {
	n := FleetNode{Node: name, State: FleetNoAnswer}
	if raw == nil {
		n.Problem = fmt.Sprintf("no answer within %s", timeout)
		return n
	}
	var st protocol.Status
	if err := protocol.DecodeAnswerFrom(raw, name, &st); err != nil || st.ID != "" {
		n.Problem = fmt.Sprintf("unreadable answer: %q", protocol.Truncate(string(raw), 120))
		return n
	}
	n.Puppet, n.Last = st.Puppet, st.Last
	n.Run, n.Disabled = protocol.OneLine(st.Running, 128), protocol.OneLine(st.Disabled, 300)
	if n.Puppet == nil {
		// A node whose serfdeploy predates these figures.
		n.Puppet = &protocol.PuppetState{Error: "its serfdeploy is too old to report Puppet's own state"}
	}
	n.Puppet.Error = protocol.OneLine(n.Puppet.Error, 300)
	n.Puppet.Version = protocol.OneLine(n.Puppet.Version, 300)
	if n.Puppet.Version == "" && n.Puppet.By == protocol.BySerfdeploy && st.Last != nil {
		n.Puppet.Version = protocol.OneLine(st.Last.Applied, 300) // left out of the answer as the same
	}
	n.Daemon = n.Puppet.Daemon
	switch {
	case n.Run != "" || n.Puppet.Running:
		n.State = FleetRunning
	case n.Disabled != "":
		n.State = FleetDisabled
	default:
		n.State = FleetIdle
	}
	return n
}

// fleetExit is the fleet view's exit code: 4 when a node did not answer.
func fleetExit(nodes []FleetNode) int {
	for _, n := range nodes {
		if n.State == FleetNoAnswer {
			return ExitIncomplete
		}
	}
	return ExitOK
}

// CountReport is `serfdeploy count`: how many nodes are in each state.
type CountReport struct {
	Filter   string      `json:"filter"`
	Total    int         `json:"total"`
	Running  int         `json:"running"`
	Idle     int         `json:"idle"`
	Disabled int         `json:"disabled"`
	NoAnswer int         `json:"no_answer"`
	Daemon   DaemonCount `json:"daemon"`
	Nodes    []FleetNode `json:"nodes"`
	ExitCode int         `json:"exit_code"`
}

// DaemonCount counts the answering nodes by their agent daemon's state.
type DaemonCount struct {
	Running int `json:"running"`
	Stopped int `json:"stopped"`
	Unknown int `json:"unknown"`
}

// Count asks the alive nodes f matches whether Puppet runs, idles or is
// disabled there, and whether its agent daemon runs. Exit 0 when every
// node answered, 4 when one did not.
func Count(ctx context.Context, rpc RPC, f serfrpc.Filter, timeout time.Duration) (*CountReport, error) {
	nodes, err := askFleet(ctx, rpc, f, timeout)
	if err != nil {
		return nil, err
	}
	return countNodes(f.String(), nodes), nil
}

func countNodes(filter string, nodes []FleetNode) *CountReport {
	rep := &CountReport{Filter: filter, Total: len(nodes), Nodes: nodes, ExitCode: fleetExit(nodes)}
	for _, n := range nodes {
		switch n.State {
		case FleetRunning:
			rep.Running++
		case FleetDisabled:
			rep.Disabled++
		case FleetIdle:
			rep.Idle++
		default:
			rep.NoAnswer++
			continue
		}
		switch n.Daemon {
		case protocol.DaemonRunning:
			rep.Daemon.Running++
		case protocol.DaemonStopped:
			rep.Daemon.Stopped++
		default:
			rep.Daemon.Unknown++
		}
	}
	return rep
}

// Figures are the minimum, mean and maximum of one figure over the nodes
// that have it.
type Figures struct {
	Min   float64 `json:"min"`
	Avg   float64 `json:"avg"`
	Max   float64 `json:"max"`
	Nodes int     `json:"nodes"`
}

func (f *Figures) add(v float64) {
	if f.Nodes == 0 || v < f.Min {
		f.Min = v
	}
	if f.Nodes == 0 || v > f.Max {
		f.Max = v
	}
	f.Avg = (f.Avg*float64(f.Nodes) + v) / float64(f.Nodes+1)
	f.Nodes++
}

// ResourceFigures are Puppet's resource counts of the nodes' last runs.
type ResourceFigures struct {
	Total     Figures `json:"total"`
	Changed   Figures `json:"changed"`
	Failed    Figures `json:"failed"`
	OutOfSync Figures `json:"out_of_sync"`
}

// NodeNote names a node in one of the summary's lists, with the time of
// its last run (unix seconds, when it has one) and what to know of it.
type NodeNote struct {
	Node   string `json:"node"`
	At     int64  `json:"at,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// SummaryReport is `serfdeploy summary`: the figures of every matching
// node's last Puppet run, whoever made it, and the nodes to look at.
type SummaryReport struct {
	Filter string `json:"filter"`
	Total  int    `json:"total"`
	// Answered nodes, and of them those whose last run's figures were read.
	Answered    int `json:"answered"`
	WithFigures int `json:"with_figures"`
	// LastRunAge is seconds since each node's last run ended (on the
	// CLI's clock, from the node's), ConfigRetrieval and RunTime its
	// config retrieval and run time in seconds.
	LastRunAge      Figures         `json:"last_run_age_s"`
	ConfigRetrieval Figures         `json:"config_retrieval_s"`
	RunTime         Figures         `json:"run_time_s"`
	Resources       ResourceFigures `json:"resources"`
	// BySerfdeploy and ByOther count the last runs serfdeploy made and
	// those made outside it (the daemon, cron, by hand).
	BySerfdeploy int `json:"by_serfdeploy"`
	ByOther      int `json:"by_other"`
	// Oldest are the (at most maxOldest) nodes whose last run is oldest.
	Oldest   []NodeNote `json:"oldest"`
	Failed   []NodeNote `json:"failed"`
	Disabled []NodeNote `json:"disabled"`
	Running  []NodeNote `json:"running"`
	NoAnswer []NodeNote `json:"no_answer"`
	// Unreadable are the nodes that answered without figures: no
	// summary, one that cannot be read, or an older serfdeploy.
	Unreadable []NodeNote `json:"unreadable"`
	ExitCode   int        `json:"exit_code"`
}

// maxOldest is how many of the oldest nodes the summary names.
const maxOldest = 5

// Summary asks the alive nodes f matches for their Puppet state and sums
// up their last runs. Exit 0 when every node answered, 4 when one did not.
func Summary(ctx context.Context, rpc RPC, f serfrpc.Filter, timeout time.Duration) (*SummaryReport, error) {
	nodes, err := askFleet(ctx, rpc, f, timeout)
	if err != nil {
		return nil, err
	}
	return summarize(f.String(), nodes, time.Now()), nil
}

func summarize(filter string, nodes []FleetNode, now time.Time) *SummaryReport {
	rep := &SummaryReport{Filter: filter, Total: len(nodes), ExitCode: fleetExit(nodes),
		Oldest: []NodeNote{}, Failed: []NodeNote{}, Disabled: []NodeNote{}, Running: []NodeNote{}, NoAnswer: []NodeNote{}, Unreadable: []NodeNote{}}
	var withRuns []FleetNode
	for _, n := range nodes {
		switch n.State {
		case FleetNoAnswer:
			rep.NoAnswer = append(rep.NoAnswer, NodeNote{Node: n.Node, Detail: n.Problem})
			continue
		case FleetRunning:
			rep.Running = append(rep.Running, NodeNote{Node: n.Node, Detail: runningDetail(n)})
		}
		rep.Answered++
		if n.Disabled != "" { // whether running or not
			rep.Disabled = append(rep.Disabled, NodeNote{Node: n.Node, Detail: n.Disabled})
		}
		if failed, note := lastRunFailed(n); failed {
			rep.Failed = append(rep.Failed, note)
		}
		p := n.Puppet
		if p.Error != "" || p.At == 0 {
			rep.Unreadable = append(rep.Unreadable, NodeNote{Node: n.Node, Detail: p.Error})
			continue
		}
		rep.WithFigures++
		withRuns = append(withRuns, n)
		rep.LastRunAge.add(max(0, now.Sub(time.Unix(p.At, 0)).Seconds()))
		rep.ConfigRetrieval.add(p.ConfigRetrieval)
		rep.RunTime.add(p.Duration)
		rep.Resources.Total.add(float64(p.Total))
		rep.Resources.Changed.add(float64(p.Changed))
		rep.Resources.Failed.add(float64(p.Failed))
		rep.Resources.OutOfSync.add(float64(p.OutOfSync))
		if p.By == protocol.BySerfdeploy {
			rep.BySerfdeploy++
		} else {
			rep.ByOther++
		}
	}
	slices.SortStableFunc(withRuns, func(a, b FleetNode) int { return cmp.Compare(a.Puppet.At, b.Puppet.At) })
	for _, n := range withRuns[:min(len(withRuns), maxOldest)] {
		rep.Oldest = append(rep.Oldest, NodeNote{Node: n.Node, At: n.Puppet.At, Detail: byText(n.Puppet.By)})
	}
	rounded(rep)
	return rep
}

// lastRunFailed says whether a node's last run failed: Puppet's own, or
// serfdeploy's when it is the newer (a run that left no summary: Puppet
// killed, or it never started).
func lastRunFailed(n FleetNode) (bool, NodeNote) {
	p, l := n.Puppet, n.Last
	if l != nil && l.Finished > p.At+1 && l.Phase != protocol.PhaseFinished && protocol.Done(l.Phase) &&
		l.Phase != protocol.PhaseSkipped && l.Phase != protocol.PhaseBusy && l.Phase != protocol.PhaseDisabled {
		detail := l.Reason
		if l.Message != "" {
			detail += ": " + l.Message
		}
		return true, NodeNote{Node: n.Node, At: l.Finished, Detail: protocol.OneLine("serfdeploy's run "+l.ID+", after Puppet's last summary: "+detail, 300)}
	}
	if !p.Fail || p.Error != "" {
		return false, NodeNote{}
	}
	detail := fmt.Sprintf("%d of %d resources failed", p.Failed, p.Total)
	if p.Total == 0 {
		detail = "no catalog applied"
	}
	return true, NodeNote{Node: n.Node, At: p.At, Detail: detail + ", " + byText(p.By)}
}

// byText says who made a node's last run.
func byText(by string) string {
	if by == protocol.BySerfdeploy {
		return "by serfdeploy"
	}
	return "outside serfdeploy"
}

// runningDetail says whose run a node is applying.
func runningDetail(n FleetNode) string {
	if n.Run != "" {
		return "serfdeploy's run " + n.Run
	}
	return "outside serfdeploy (Puppet's catalog lock is held)"
}

// rounded keeps the figures to what a person reads: milliseconds.
func rounded(rep *SummaryReport) {
	for _, f := range []*Figures{&rep.LastRunAge, &rep.ConfigRetrieval, &rep.RunTime,
		&rep.Resources.Total, &rep.Resources.Changed, &rep.Resources.Failed, &rep.Resources.OutOfSync} {
		f.Min, f.Avg, f.Max = round3(f.Min), round3(f.Avg), round3(f.Max)
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
