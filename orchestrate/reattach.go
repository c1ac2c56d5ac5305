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
	found, err := findRecords(ctx, rpc, &opts, names(alive), isMaster)
	if err != nil {
		return nil, err
	}
	var silentMasters, silentOthers []string
	for _, n := range found.silent {
		if isMaster[n] {
			silentMasters = append(silentMasters, n)
		} else {
			silentOthers = append(silentOthers, n)
		}
	}
	req, targets, masters := found.req, found.targets, found.masters
	if req == nil && len(silentMasters) > 0 {
		return nil, Errorf(ExitInfra, "no node that answered has a record of deploy id %s, and %d master(s) did not answer (%s): try again", opts.ID, len(silentMasters), someNames(silentMasters))
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
	// A master keeps the deploy's target count: without its answer the
	// watch cannot say every target is accounted for. Another node that
	// never answers (one without serfdeploy's handler never does) is
	// only noted: a target among them is caught by that count.
	w.s.silent = silentMasters
	if len(silentOthers) > 0 {
		w.observer.note(fmt.Sprintf("%d node(s) never answered whether they have a record of %s (%s); not counted", len(silentOthers), opts.ID, someNames(silentOthers)))
	}
	return w.follow(ctx, func(context.Context) error {
		w.s.apply(fired{At: time.Now(), Reattached: true})
		// What the nodes said is the watch's first poll: the masters' sync
		// and how many nodes their trigger was sent to count even when
		// every target is settled before the next poll reaches a master.
		for _, r := range found.answers {
			w.s.apply(statusAnswer{At: time.Now(), From: r.From, Payload: r.Payload})
		}
		w.observer.note(fmt.Sprintf("watching %s %s (%s): %d node(s) and %d master(s) have a record of it", kind, opts.ID, req, len(targets), len(masters)))
		return nil
	})
}

// records is what the nodes said of a deploy id when a watch re-attached.
type records struct {
	targets, masters []serfrpc.Member // nodes with a run record, masters with a sync record
	req              *protocol.Request
	answers          []serfrpc.Response // the answers with a record
	silent           []string           // alive nodes that never answered
}

// discoveryRounds: how many times a watch asks the nodes that have not
// answered, each time re-asking every second up to --query-timeout.
const discoveryRounds = 2

// findRecords asks every alive node for its record of opts.ID, and asks
// again those that do not answer (most answer that they have none): a
// node whose answer is lost must not drop out of the deploy. Before, one
// query listened 1.5 s for the nodes with a record; right after the CLI's
// agent restarted it heard 1 of 4, and the watch exited 0 (the oracle's
// false green, seed 4 scenario 72).
func findRecords(ctx context.Context, rpc RPC, opts *Options, alive []string, isMaster map[string]bool) (*records, error) {
	found := &records{silent: alive}
	payload, _ := json.Marshal(protocol.StatusRequest{ID: opts.ID})
	take := func(r serfrpc.Response) {
		var st protocol.Status
		if protocol.DecodeAnswerFrom(r.Payload, r.From, &st) != nil {
			return
		}
		// A master that was no target records its run skipped: it has
		// no run of the deploy to follow.
		hasRun, hasSync := st.HasRun() && st.Phase != protocol.PhaseSkipped, st.HasSync()
		if !hasRun && !hasSync {
			return
		}
		found.answers = append(found.answers, r)
		if hasRun {
			found.targets = append(found.targets, serfrpc.Member{Name: r.From})
		}
		if hasSync && isMaster[r.From] {
			found.masters = append(found.masters, serfrpc.Member{Name: r.From})
		}
		if found.req == nil || found.req.Module == "" && st.Request.Module != "" {
			req := st.Request
			found.req = &req
		}
	}
	for round := 0; round < discoveryRounds && len(found.silent) > 0; round++ {
		ask := found.silent
		res, err := rpc.Query(ctx, serfrpc.Query{
			Name: protocol.QueryPuppetStatus, Payload: payload, Filter: serfrpc.Filter{Nodes: ask},
			Timeout: opts.QueryTimeout, Expect: ask, Resend: resendQuery, OnResponse: take,
		})
		if err != nil {
			return nil, interruptedOr(ctx, err, "looking for the nodes that know the deploy id")
		}
		found.silent = nil
		for _, n := range ask {
			if !res.Responded(n) {
				found.silent = append(found.silent, n)
			}
		}
	}
	return found, nil
}
