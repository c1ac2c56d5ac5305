package orchestrate

import (
	"context"
	"fmt"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// What --on-disabled and --on-running choose between.
const (
	PolicyFail = "fail"
	PolicySkip = "skip"
	PolicyWait = "wait" // --on-running only: the busy target queues the run
)

// Options drive a deploy or a run.
type Options struct {
	ID          string
	IDGiven     bool   // the user chose ID (--id): it may have been used before
	Module      string // deploy only
	Ref         string // deploy only
	Environment string // "" lets each node use its configured default
	Filter      serfrpc.Filter
	MasterTag   string // key=regexp naming the masters; default role=puppetmaster
	Build       *protocol.Build
	Puppet      protocol.PuppetFlags // --noop, --puppet-tags, --skip-tags

	// Select is --fact, --class and --select as one selector (protocol/
	// selector.go), evaluated on the nodes: ResolveSelect narrows Filter
	// to the names of the nodes it matches before anything is sent.
	Select   string
	selected bool // ResolveSelect narrowed Filter (selecttargets.go)

	// MaxTargets refuses a deploy or run that matches more nodes (0: no
	// limit): a wrong tag must not reach the whole fleet.
	MaxTargets int
	// OnDisabled and OnRunning say what a target whose Puppet agent is
	// disabled, or busy with another run, means for the deploy: "fail"
	// (the default here: it did not apply the release) or "skip" (reported
	// skipped, not a failure); OnRunning may also be "wait": the target
	// queues the run until the other ends, within Timeout.
	OnDisabled string
	OnRunning  string
	// Batch ("N" or "N%" of the targets) and Canary (a first batch of N)
	// start the runs batch by batch; MaxFailures ("N" or "N%") is how many
	// targets may fail before no further batch starts (default 0).
	Batch       string
	Canary      int
	MaxFailures string
	// Concurrency keeps that many runs going (mco puppet runall N): the
	// next target starts as soon as one ends, until --max-failures is
	// spent. BatchSleep is a pause between batches of --batch/--canary.
	Concurrency int
	BatchSleep  time.Duration
	// ExpectVersion (run): a finished node whose applied code version
	// differs is stale. "module=commit ..." as the masters write it
	// (commits may be abbreviated), or Puppet's config_version verbatim.
	ExpectVersion string

	Timeout      time.Duration // the whole watch; default 30m
	PollInterval time.Duration // between status polls; default 2s
	QueryTimeout time.Duration // serf's timeout for one poll; default 5s
	// MissedAfter is how long a target may know nothing of the run after it
	// was triggered before it is reported as never having received it.
	MissedAfter time.Duration // default 20s
	// LeaveGrace is how long a target that left gracefully (`serf leave`,
	// as an agent restart with leave_on_terminate does) has to come back
	// before it is reported lost: its Puppet run does not depend on its
	// agent and goes on. A failed node gets no grace (serf has waited), but is
	// asked once more: an answer shows serf wrong, as it can be under load.
	LeaveGrace time.Duration // default 15s
	// ResendAfter is how long the watch waits for a sign of life from the
	// masters (or from a target after the trigger) before it sends the
	// event (or the run request) again.
	ResendAfter time.Duration // default 4s

	Log     LogReader     // nil: final statuses come from the nodes' answers
	LogWait time.Duration // how long to wait for every finished record; default 30s

	Observer Observer
}

func (o *Options) setDefaults() {
	if o.MasterTag == "" {
		o.MasterTag = protocol.DefaultMasterTag
	}
	for _, d := range []struct {
		field *time.Duration
		value time.Duration
	}{
		{&o.Timeout, 30 * time.Minute},
		{&o.PollInterval, 2 * time.Second},
		{&o.QueryTimeout, 5 * time.Second},
		{&o.MissedAfter, 20 * time.Second},
		{&o.ResendAfter, 4 * time.Second},
		{&o.LeaveGrace, 15 * time.Second},
		{&o.LogWait, 30 * time.Second},
	} {
		if *d.field == 0 {
			*d.field = d.value
		}
	}
}

// waitSec is how long a busy target queues the run (--on-running wait):
// as long as the watch lasts.
func (o *Options) waitSec() int {
	if o.OnRunning != PolicyWait {
		return 0
	}
	return int(o.Timeout.Seconds())
}

// request is what these options ask for, as the nodes' records name it.
func (o *Options) request() protocol.Request {
	return protocol.Request{Module: o.Module, Ref: o.Ref, Environment: o.Environment}
}

// Check validates options the way Deploy (deploy true) and Run do, so
// that a caller can refuse bad input before connecting to anything.
func Check(o Options, deploy bool) error {
	o.setDefaults()
	o.selected = true // before connecting: the selection's syntax and size only
	return o.validate(deploy)
}

// validate checks what the user gave before anything is sent.
func (o *Options) validate(deploy bool) error {
	if err := protocol.ValidID(o.ID); err != nil {
		return &Error{Code: ExitUsage, Err: err}
	}
	if deploy {
		if err := protocol.ValidModule(o.Module); err != nil {
			return &Error{Code: ExitUsage, Err: err}
		}
		if err := protocol.ValidRef(o.Ref); err != nil {
			return &Error{Code: ExitUsage, Err: err}
		}
	}
	if o.Environment != "" {
		if err := protocol.ValidEnvironment(o.Environment); err != nil {
			return &Error{Code: ExitUsage, Err: err}
		}
	}
	for _, n := range o.Filter.Nodes {
		if err := protocol.ValidNode(n); err != nil {
			return &Error{Code: ExitUsage, Err: err}
		}
	}
	if _, err := MasterFilter(o.MasterTag); err != nil {
		return err
	}
	if err := o.Puppet.Validate(); err != nil {
		return &Error{Code: ExitUsage, Err: err}
	}
	if v := o.OnDisabled; v != "" && v != PolicyFail && v != PolicySkip {
		return Errorf(ExitUsage, "--on-disabled %q is not one of fail, skip", v)
	}
	if v := o.OnRunning; v != "" && v != PolicyFail && v != PolicySkip && v != PolicyWait {
		return Errorf(ExitUsage, "--on-running %q is not one of wait, skip, fail", v)
	}
	if o.MaxTargets < 0 {
		return Errorf(ExitUsage, "--max-targets must be positive (got %d)", o.MaxTargets)
	}
	if err := o.checkRollout(); err != nil {
		return err
	}
	if deploy && o.ExpectVersion != "" {
		return Errorf(ExitUsage, "--expect-version is for run; a deploy checks the code its masters installed")
	}
	if err := o.checkSelect(); err != nil {
		return err
	}
	return CheckFilter(o.Filter)
}

// LogChecker is what CheckLog needs of the logging service.
type LogChecker interface {
	Records(ctx context.Context, deployID string, since, until time.Time) ([]protocol.RunRecord, error)
}

// CheckLog reads the logging service once before anything is sent, which
// proves it is up and takes the credentials: the final statuses come from
// it, and a deploy that cannot be read back must not start.
func CheckLog(parent context.Context, logs LogChecker, id string) error {
	ctx, cancel := context.WithTimeout(parent, 30*time.Second)
	defer cancel()
	now := time.Now()
	if _, err := logs.Records(ctx, id, now.Add(-time.Minute), now); err != nil {
		if parent.Err() != nil {
			return Errorf(ExitIncomplete, "interrupted while checking the logging service; nothing was deployed")
		}
		return fmt.Errorf("the logging service, where final statuses come from, cannot be read (nothing was deployed): %w", err)
	}
	return nil
}
