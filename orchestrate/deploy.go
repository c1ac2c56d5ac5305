package orchestrate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// Deploy ships a module version to the masters and watches the puppet runs
// it triggers to the end. It returns the result (also when it ends early, as
// far as it got) and an *Error for anything that decides the exit code
// before the nodes do.
func Deploy(ctx context.Context, rpc RPC, opts Options) (*Result, error) {
	targets, masters, payload, err := prepareDeploy(ctx, rpc, &opts)
	if err != nil {
		return nil, err
	}
	if err := checkID(ctx, rpc, &opts); err != nil {
		return nil, err
	}
	w := newWatch(rpc, &opts, "deploy", targets, masters)
	w.eventPayload = payload
	if opts.batched() {
		return w.follow(ctx, w.syncOnly)
	}
	w.runPayload = runRequest(&opts, 0)
	return w.follow(ctx, func(ctx context.Context) error {
		w.s.apply(fired{At: time.Now()}) // from here on, a retry may deploy twice
		w.lastSent = time.Now()
		if err := rpc.FireEvent(ctx, protocol.EventDeploy, payload, false); err != nil {
			return &during{doing: "firing the deploy event", err: err}
		}
		w.observer.note(fmt.Sprintf("deploy %s: %s at %s to %d node(s), via %d master(s)", opts.ID, opts.Module, opts.Ref, len(targets), len(masters)))
		return nil
	})
}

// prepareDeploy is prepare for a deploy: at least one master, and the
// event's payload.
func prepareDeploy(ctx context.Context, rpc RPC, opts *Options) (targets, masters []serfrpc.Member, payload []byte, err error) {
	targets, masters, err = prepare(ctx, rpc, opts, true)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(masters) == 0 {
		return nil, nil, nil, Errorf(ExitInfra, "no alive puppet master matched --master-tag %s; check `serfdeploy members --tag %s`", opts.MasterTag, opts.MasterTag)
	}
	payload, err = deployPayload(opts, len(targets))
	return targets, masters, payload, err
}

// deployPayload builds the event, within serf's 512 bytes. The build's
// context is the first thing to go when it does not fit: it helps tracing,
// the deploy does not need it.
func deployPayload(opts *Options, targets int) ([]byte, error) {
	d := protocol.Deploy{
		ID: opts.ID, Module: opts.Module, Ref: opts.Ref, Environment: opts.Environment,
		Tags: opts.Filter.Tags, Nodes: opts.Filter.Nodes, SkipMasters: opts.Filter.Empty(), Build: opts.Build,
		PuppetFlags: opts.Puppet, WaitSec: opts.waitSec(), SyncOnly: opts.batched(), Targets: targets,
	}
	if d.SyncOnly {
		// The masters only install the code and the CLI sends the runs
		// itself, by name: the target filter would only take room (a
		// selection's names need not fit in the event).
		d.Tags, d.Nodes = nil, nil
	}
	b, err := protocol.EncodeDeploy(&d)
	var tooLarge *protocol.ErrTooLarge
	dropped := ""
	if errors.As(err, &tooLarge) && d.Build != nil {
		d.Build = &protocol.Build{Tag: opts.Build.Tag}
		dropped = "the build URL and job name"
		if b, err = protocol.EncodeDeploy(&d); err != nil {
			d.Build = nil
			dropped = "the build's context (tag, URL, job name)"
			b, err = protocol.EncodeDeploy(&d)
		}
		if err != nil {
			dropped = ""
		}
	}
	if errors.As(err, &tooLarge) {
		return nil, Errorf(ExitUsage, "%v: target fewer nodes by name, or use a tag (e.g. --tag segment=qa) instead of many --node flags", err)
	}
	if dropped != "" {
		opts.Observer.note(dropped + " did not fit in serf's 512-byte event and was left out of the deploy event")
	}
	return b, err
}

// Run starts an ad-hoc puppet run on the targets (no code deploy) and
// watches it to the end, like `mco puppet runonce`.
func Run(ctx context.Context, rpc RPC, opts Options) (*Result, error) {
	targets, _, err := prepare(ctx, rpc, &opts, false)
	if err != nil {
		return nil, err
	}
	if err := checkID(ctx, rpc, &opts); err != nil {
		return nil, err
	}
	w := newWatch(rpc, &opts, "run", targets, nil)
	if !opts.batched() {
		w.observer.note(fmt.Sprintf("run %s on %d node(s)", opts.ID, len(targets)))
	}
	// The first batch (every target, without --batch) is sent by follow.
	return w.follow(ctx, func(context.Context) error { return nil })
}

// prepare validates the options and resolves the targets (at least one) and
// the masters.
func prepare(ctx context.Context, rpc RPC, opts *Options, deploy bool) (targets, masters []serfrpc.Member, err error) {
	opts.setDefaults()
	if err := opts.validate(deploy); err != nil {
		return nil, nil, err
	}
	targets, masters, err = Targets(ctx, rpc, opts.Filter, opts.MasterTag)
	if err != nil {
		return nil, nil, interruptedOr(ctx, err, "listing the targets")
	}
	if len(targets) == 0 {
		return nil, nil, noTargets(opts.Filter)
	}
	if opts.MaxTargets > 0 && len(targets) > opts.MaxTargets {
		return nil, nil, Errorf(ExitUsage, "%d nodes match %s, more than --max-targets %d; nothing was sent: narrow the filter (see `serfdeploy members`) or raise --max-targets",
			len(targets), describe(opts.Filter), opts.MaxTargets)
	}
	return targets, masters, nil
}

// interruptedOr says what an error from serf means: if ctx ended
// (SIGINT/SIGTERM), the watch was interrupted, which is exit 4, not an
// infrastructure failure.
func interruptedOr(ctx context.Context, err error, doing string) error {
	if ctx.Err() != nil {
		return Errorf(ExitIncomplete, "interrupted while %s", doing)
	}
	return infra(err)
}
