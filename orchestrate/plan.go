package orchestrate

import (
	"context"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// Plan is what a deploy or run would send and to whom (--dry-run).
type Plan struct {
	ID      string   `json:"id"`
	Kind    string   `json:"kind"`
	Filter  string   `json:"filter"`
	Targets []string `json:"targets"`
	Masters []string `json:"masters,omitempty"`
	// Send names what would go out: serf's deploy event (deploy) or the
	// puppetrun query (run), with its payload and the event's size as serf
	// counts it against its 512 bytes.
	Send      string `json:"send"`
	Payload   string `json:"payload"`
	EventSize int    `json:"event_size,omitempty"`
}

// DryRun resolves the targets and masters and builds the payload exactly as
// Deploy (deploy true) or Run would, and sends nothing: not the event, not
// the query, not even the check of an explicit id.
func DryRun(ctx context.Context, rpc RPC, opts Options, deploy bool) (*Plan, error) {
	if !deploy {
		targets, _, err := prepare(ctx, rpc, &opts, false)
		if err != nil {
			return nil, err
		}
		return &Plan{ID: opts.ID, Kind: "run", Filter: describe(opts.Filter), Targets: names(targets),
			Send: "query " + protocol.QueryPuppetRun, Payload: string(runRequest(&opts, len(targets)))}, nil
	}
	targets, masters, payload, err := prepareDeploy(ctx, rpc, &opts)
	if err != nil {
		return nil, err
	}
	return &Plan{ID: opts.ID, Kind: "deploy", Filter: describe(opts.Filter), Targets: names(targets), Masters: names(masters),
		Send: "event " + protocol.EventDeploy, Payload: string(payload), EventSize: protocol.EventSize(protocol.EventDeploy, payload)}, nil
}
