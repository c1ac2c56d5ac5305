package orchestrate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// Watch re-attaches to a deploy or run already under way, started by
// another process (a Jenkins build that was aborted, say), and follows it
// to the end like Deploy and Run do, with the same result and exit code.
// It sends nothing but status queries. The nodes and masters with a record
// of opts.ID are its targets, and what it was for (module, ref,
// environment) comes from their records.
func Watch(ctx context.Context, rpc RPC, opts Options) (*Result, error) {
	opts.setDefaults()
	opts.IDGiven = true
	if err := protocol.ValidID(opts.ID); err != nil {
		return nil, &Error{Code: ExitUsage, Err: err}
	}
	_, masterList, err := Targets(ctx, rpc, serfrpc.Filter{}, opts.MasterTag)
	if err != nil {
		return nil, interruptedOr(ctx, err, "listing the members")
	}
	isMaster := map[string]bool{}
	for _, m := range masterList {
		isMaster[m.Name] = true
	}
	alive, err := rpc.Members(ctx, serfrpc.Filter{}, serfrpc.StatusAlive)
	if err != nil {
		return nil, interruptedOr(ctx, err, "listing the members")
	}
	// Every alive node is asked, and re-asked until it answers (most say
	// they have no record): a node whose answer is lost must not drop out
	// of the deploy. Before, one query listened 1.5 s for the nodes with a
	// record; right after the CLI's agent restarted it heard 1 of 4, and
	// the watch exited 0 (the oracle's false green, seed 4 scenario 72).
	everyone := names(alive)
	payload, _ := json.Marshal(protocol.StatusRequest{ID: opts.ID})
	var targets, masters []serfrpc.Member
	var req *protocol.Request
	var answers []serfrpc.Response
	res, err := rpc.Query(ctx, serfrpc.Query{
		Name: protocol.QueryPuppetStatus, Payload: payload, Filter: serfrpc.Filter{Nodes: everyone},
		Timeout: opts.QueryTimeout, Expect: everyone, Resend: resendQuery,
		OnResponse: func(r serfrpc.Response) {
			var st protocol.Status
			if json.Unmarshal(r.Payload, &st) != nil || st.V == 0 || st.Node != r.From {
				return
			}
			hasRun := st.Phase != "" && st.Phase != protocol.PhaseUnknown && st.Phase != protocol.PhaseSkipped
			hasSync := st.Sync != "" && st.Sync != protocol.PhaseUnknown
			if !hasRun && !hasSync {
				return
			}
			answers = append(answers, r)
			if hasRun {
				targets = append(targets, serfrpc.Member{Name: r.From})
			}
			if hasSync && isMaster[r.From] {
				masters = append(masters, serfrpc.Member{Name: r.From})
			}
			if req == nil || req.Module == "" && st.Request.Module != "" {
				r := st.Request
				req = &r
			}
		}})
	if err != nil {
		return nil, interruptedOr(ctx, err, "looking for the nodes that know the deploy id")
	}
	var silent []string
	for _, n := range everyone {
		if !res.Responded(n) {
			silent = append(silent, n)
		}
	}
	if req == nil && len(silent) > 0 {
		return nil, Errorf(ExitInfra, "no node that answered has a record of deploy id %s, and %d alive node(s) did not answer (%s): try again", opts.ID, len(silent), someNames(silent))
	}
	if req == nil {
		return nil, Errorf(ExitNoTargets, "no node has a record of deploy id %s: nothing ran under it, so deploying again is safe; or check the id (the first line deploy printed, and in its reports)", opts.ID)
	}
	opts.Module, opts.Ref, opts.Environment = req.Module, req.Ref, req.Environment
	kind := "run"
	if opts.Module != "" {
		kind = "deploy"
	}
	w := newWatch(rpc, &opts, kind, targets, masters)
	w.silent = silent
	if len(masters) == 0 {
		w.triggeredAt = time.Now()
	}
	// What the nodes said is the watch's first poll: the masters' sync and
	// how many nodes their trigger was sent to count even when every
	// target is settled before the next poll reaches a master.
	for _, r := range answers {
		if err := w.statusAnswer(r); err != nil {
			return w.finish(ctx, err)
		}
	}
	w.observer.note(fmt.Sprintf("watching %s %s (%s): %d node(s) and %d master(s) have a record of it", kind, opts.ID, req, len(targets), len(masters)))
	return w.finish(ctx, w.loop(ctx))
}
