package orchestrate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// idCheckPatience: how long checkID waits for nodes that did not
// acknowledge its query (see serfrpc.Query.Patience).
const idCheckPatience = 300 * time.Millisecond

// checkID makes sure an id the user chose names this request only. An id
// used before for another module, ref or environment is refused before
// anything is sent: its records would otherwise pass for this deploy's
// results. The same id for the same request re-attaches: nodes run each
// id once, and the watch follows the runs already under way.
func checkID(ctx context.Context, rpc RPC, opts *Options) error {
	if !opts.IDGiven {
		return nil // a generated id is new
	}
	want := opts.request()
	var conflict error
	known := 0
	// Every alive node is asked and answers (most "unknown"), so that the
	// check ends as soon as all have, not after a silent wait: it is on
	// the way to every run of a deploy with --id. A node the gossip missed
	// gets idCheckPatience: the check refuses early, and the watch never
	// counts an answer of another request anyway. Not a shorter timeout:
	// with a 1 s one, at 150 agents, the query ended while answers were
	// still arriving and the CLI's serf agent went away (once, bench/fleet).
	alive, err := rpc.Members(ctx, serfrpc.Filter{}, serfrpc.StatusAlive)
	if err != nil {
		return interruptedOr(ctx, err, "checking the deploy id")
	}
	payload, _ := json.Marshal(protocol.StatusRequest{ID: opts.ID})
	_, err = rpc.Query(ctx, serfrpc.Query{
		Name: protocol.QueryPuppetStatus, Payload: payload, Filter: serfrpc.Filter{Nodes: names(alive)},
		Timeout: opts.QueryTimeout, Expect: names(alive), Patience: idCheckPatience,
		OnResponse: func(r serfrpc.Response) {
			var st protocol.Status
			if protocol.DecodeAnswerFrom(r.Payload, r.From, &st) != nil {
				return
			}
			if !st.HasRun() && !st.HasSync() {
				return
			}
			known++
			if conflict == nil && st.Request.Conflicts(want) {
				conflict = Errorf(ExitUsage, "deploy id %s was already used on %s for a %s, not this %s; choose another --id, or leave --id out for a new one",
					opts.ID, r.From, st.Request, want)
			}
		}})
	if conflict != nil {
		return conflict
	}
	if err != nil {
		return interruptedOr(ctx, err, "checking the deploy id")
	}
	if known > 0 {
		opts.Observer.note(fmt.Sprintf("%d node(s) already have a record of %s for this %s: following those runs, not starting new ones", known, opts.ID, want))
	}
	return nil
}
