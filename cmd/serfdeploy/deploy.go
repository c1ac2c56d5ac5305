package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/internal/render"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// startFlags are deploy's and run's: what to start, and how safely.
func startFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "id", Usage: "deploy id (default with Jenkins' BUILD_TAG: BUILD_TAG plus a suffix, never BUILD_TAG alone: for deploy a hash of the request, the same when the same deploy is started again in the build; for run a random one. Without BUILD_TAG: a time-sortable id. Printed first on stderr)"},
		&cli.StringFlag{Name: "environment", Usage: "Puppet environment (default: for deploy, each node's configured one; for run, the one Puppet itself uses, from puppet.conf)"},
		&cli.IntFlag{Name: "max-targets", Usage: "refuse to start (exit 2, nothing sent) when more nodes than this match; 0 means no limit"},
		&cli.StringFlag{Name: "batch", Usage: "start the runs in batches of N or N% of the targets, each watched to the end before the next"},
		&cli.IntFlag{Name: "canary", Usage: "a first batch of N targets, then the rest (in --batch batches)"},
		&cli.StringFlag{Name: "max-failures", Usage: "with batches or --concurrency: how many targets (N or N%) may fail before no further run starts (default 0); the targets not started are reported skipped"},
		&cli.IntFlag{Name: "concurrency", Usage: "keep N runs going: the next target starts as soon as one ends (mco puppet runall N); not with --batch/--canary"},
		&cli.DurationFlag{Name: "batch-sleep", Usage: "pause this long between batches of --batch/--canary"},
		&cli.DurationFlag{Name: "splay", Usage: "each target waits a random part of this (at most 1h) before it starts Puppet, so the Puppet server is not asked by all at once"},
		&cli.BoolFlag{Name: "dry-run", Usage: "list the targets, the masters and what would be sent, send nothing, exit 0"},
		&cli.BoolFlag{Name: "noop", Usage: "run Puppet with --noop: change nothing, exit 6 when a node has pending changes"},
		&cli.StringFlag{Name: "puppet-tags", Usage: "apply only resources with these Puppet tags (comma-separated; puppet --tags)"},
		&cli.StringFlag{Name: "skip-tags", Usage: "skip resources with these Puppet tags (comma-separated; puppet --skip_tags)"},
		&cli.StringFlag{Name: "on-disabled", Value: orchestrate.PolicyFail, Usage: "a target whose Puppet agent is disabled: fail (exit 1) or skip (reported skipped with its message)"},
		&cli.StringFlag{Name: "on-running", Value: orchestrate.PolicyWait, Usage: "a target busy with another Puppet run: wait (queue this run until it ends, within --timeout), skip (reported skipped) or fail (exit 1)"},
	}
}

func watchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "master-tag", Value: protocol.DefaultMasterTag, Usage: "key=regexp naming the Puppet masters"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Minute, Usage: "give up on nodes still running after this long (exit 4)"},
		&cli.DurationFlag{Name: "poll-interval", Value: 2 * time.Second, Usage: "time between status polls"},
		&cli.DurationFlag{Name: "query-timeout", Value: 5 * time.Second, Usage: "how long one status poll waits for slow nodes"},
		&cli.DurationFlag{Name: "missed-after", Value: 20 * time.Second, Usage: "a target that knows nothing of the run this long after the trigger is reported missed"},
		&cli.DurationFlag{Name: "log-wait", Value: 30 * time.Second, Usage: "how long to wait for the nodes' finished records in the logging service"},
	}
}

func deployCommand(env *cliEnv) *cli.Command {
	return watchingCommand(env, "deploy", "ship a module at a git ref to the masters and watch the Puppet runs to the end",
		"Fires serf's `deploy` event: each Puppet master fetches the module at --ref from git, installs\n"+
			"it atomically into the environment's modulepath and triggers a Puppet run on the targets (the\n"+
			"alive nodes matching --tag/--node; with no filter, every node but the masters). serfdeploy then\n"+
			"polls every target until it has finished, failed or is lost, prints a summary and exits.\n"+
			"Ctrl-C or SIGTERM stops watching (exit 4) and leaves the runs going: `serfdeploy watch ID`\n"+
			"picks them up again.",
		append(startFlags(),
			&cli.StringFlag{Name: "module", Usage: "Puppet module name (required)"},
			&cli.StringFlag{Name: "ref", Usage: "git branch, tag or commit to deploy (required)"},
		)...,
	)
}

func runCommand(env *cliEnv) *cli.Command {
	return watchingCommand(env, "run", "start a Puppet run on the matching nodes (no code deploy) and watch it to the end",
		"What `mco puppet runonce` does: fires the `puppetrun` query at the matching nodes (with no\n"+
			"filter, every node but the masters) and watches the runs like deploy does. Nodes already\n"+
			"running Puppet answer busy.",
		append(startFlags(),
			&cli.StringFlag{Name: "expect-version", Usage: "fail (stale, exit 1) a node whose applied code differs: module=commit as the status command shows it, or Puppet's config_version"},
		)...,
	)
}

func watchCommand(env *cliEnv) *cli.Command {
	cmd := watchingCommand(env, "watch", "re-attach to a deploy or run under way and follow it to the end",
		"Finds the nodes and masters with a record of DEPLOY-ID (started by another serfdeploy, e.g. a\n"+
			"Jenkins build that was aborted), follows them like deploy does and ends with the same summary,\n"+
			"reports and exit code. Sends nothing but status queries.")
	cmd.ArgsUsage = "DEPLOY-ID"
	// The deploy's own records say which nodes it reached: no filter.
	var flags []cli.Flag
	for _, f := range cmd.Flags {
		if name := f.Names()[0]; name != "tag" && name != "node" && !isSelectFlag(name) {
			flags = append(flags, f)
		}
	}
	cmd.Flags = flags
	return cmd
}

// watchingCommand builds deploy and run: the same flags and workflow, but
// for what deploy ships first.
func watchingCommand(env *cliEnv, kind, usage, description string, own ...cli.Flag) *cli.Command {
	return &cli.Command{
		Name: kind, Usage: usage, Description: description,
		Flags: concat(rpcFlags(), outputFlags(), filterFlags(), own, watchFlags(), reportFlags(), logFlags()),
		Action: action(func(c *cli.Context) error {
			return env.watchCommand(c, kind)
		}),
	}
}

// watchCommand runs a deploy or a run and reports it. Whatever happens,
// the deploy id is the first line and every report asked for is written,
// so that Jenkins never publishes a previous build's files.
func (e *cliEnv) watchCommand(c *cli.Context, kind string) error {
	if err := e.setup(c); err != nil {
		return err
	}
	id := c.String("id")
	if kind == "watch" {
		if c.NArg() != 1 {
			return usageErrorf("watch takes one deploy id, e.g. serfdeploy watch jenkins-release-42-k3f9")
		}
		id = c.Args().First()
	}
	opts := orchestrate.Options{ID: id, IDGiven: id != "", Module: c.String("module"), Ref: c.String("ref"),
		Environment: c.String("environment"), Build: buildFromEnv(e.getenv),
		MaxTargets: c.Int("max-targets"), OnDisabled: c.String("on-disabled"), OnRunning: c.String("on-running"),
		Batch: c.String("batch"), Canary: c.Int("canary"), MaxFailures: c.String("max-failures"),
		Concurrency: c.Int("concurrency"), BatchSleep: c.Duration("batch-sleep"),
		ExpectVersion: c.String("expect-version"),
		Puppet: protocol.PuppetFlags{Noop: c.Bool("noop"), Tags: c.String("puppet-tags"), SkipTags: c.String("skip-tags"),
			SplaySec: splaySeconds(c.Duration("splay"))},
	}
	reports, reportErr := checkReports(c)
	if id == "" {
		request := ""
		if kind == "deploy" {
			request = deployRequest(opts.Module, opts.Ref, opts.Environment, append(repeated(c, "tag"), selectionKey(c)...), repeated(c, "node"))
		}
		opts.ID = defaultID(e.getenv, time.Now(), request)
		// An id derived from the build and the request may have been
		// used by this same deploy before: checked like a given one.
		opts.IDGiven = request != "" && e.getenv("BUILD_TAG") != ""
	} else if err := protocol.ValidID(id); err != nil {
		// Not an id: never echoed whole, and no id line.
		return e.ended(c, kind, opts, reports, usageError{err})
	}
	fmt.Fprintf(e.io.ErrOut, "serfdeploy: %s id %s\n", kind, opts.ID)
	if reportErr != nil {
		return e.ended(c, kind, opts, reports, reportErr)
	}
	res, err := e.watch(c, kind, &opts)
	if res == nil && err == nil {
		return nil // --dry-run: nothing ran, no report
	}
	if res == nil {
		return e.ended(c, kind, opts, reports, err)
	}
	var msg string
	if err != nil {
		// The result's verdict (orchestrate's deployState) decided the
		// code, the same for the process and the result file; the error
		// only gives the line that says why it ended early.
		_, msg = explain(err)
	}
	if werr := e.writeResult(c, res, reports); werr != nil {
		// The run's own code stands: a retry of a release that ran
		// would deploy it twice. The line says what is missing.
		fmt.Fprintln(e.io.ErrOut, "serfdeploy: "+werr.Error())
	}
	if msg != "" {
		// The summary above shows the nodes; the one line says why it ended.
		fmt.Fprintln(e.io.ErrOut, "serfdeploy: "+msg)
	}
	return exitError{res.ExitCode}
}

// ended reports a deploy or run that ended before the nodes decided it
// (bad input, serf unreachable, no master...): the result says why, with
// its exit code, and that nothing was fired.
func (e *cliEnv) ended(c *cli.Context, kind string, opts orchestrate.Options, reports []report, err error) error {
	err = asInterrupt(c.Context, err)
	code, msg := explain(err)
	if protocol.ValidID(opts.ID) != nil {
		opts.ID = protocol.Truncate(opts.ID, 64)
	}
	res := orchestrate.NewResult(kind, opts)
	res.Finished = res.Started
	res.ExitCode, res.Error, res.Outcome = code, msg, msg
	if jsonOutput(c) {
		_ = e.writeResult(c, res, reports)
	} else if werr := writeReports(res, reports); werr != nil {
		fmt.Fprintln(e.io.ErrOut, "serfdeploy: "+werr.Error())
	}
	return err
}

// watch validates the options, connects and runs the deploy or run. A nil
// result means nothing was watched.
func (e *cliEnv) watch(c *cli.Context, kind string, opts *orchestrate.Options) (*orchestrate.Result, error) {
	f, err := filterFrom(c)
	if err != nil {
		return nil, err
	}
	opts.Filter, opts.MasterTag = f, c.String("master-tag")
	if opts.Select, err = selectionFrom(c); err != nil { // --fact, --class, --select
		return nil, err
	}
	opts.Timeout, opts.PollInterval = c.Duration("timeout"), c.Duration("poll-interval")
	opts.QueryTimeout, opts.MissedAfter, opts.LogWait = c.Duration("query-timeout"), c.Duration("missed-after"), c.Duration("log-wait")
	if err := checkDurations(c, "timeout", "poll-interval", "query-timeout", "missed-after", "log-wait"); err != nil {
		return nil, err
	}
	if kind == "deploy" {
		for _, name := range []string{"module", "ref"} {
			if c.String(name) == "" {
				return nil, usageErrorf("deploy needs --%s, e.g. serfdeploy deploy --module profile_web --ref v1.2.0 --tag segment=qa", name)
			}
		}
	}
	// Bad input is refused before anything is sent or even connected to.
	if err := orchestrate.Check(*opts, kind == "deploy"); err != nil {
		return nil, err
	}
	logs, err := logClient(c)
	if err != nil {
		return nil, err
	}
	ctx := c.Context
	if logs != nil {
		// Fail before deploying anything when the logging service the final
		// statuses will come from is down or refuses us.
		if err := orchestrate.CheckLog(ctx, logs, opts.ID); err != nil {
			return nil, err
		}
		opts.Log = logs
	}
	client, err := connect(ctx, c)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	// The nodes say whether they match --fact, --class, --select, and
	// the filter becomes their names (orchestrate/selecttargets.go).
	if note, err := orchestrate.ResolveSelect(ctx, client, opts, kind == "deploy"); err != nil {
		return nil, err
	} else if note != "" {
		e.io.Progressf("%s", note)
	}
	if c.Bool("dry-run") {
		plan, err := orchestrate.DryRun(ctx, client, *opts, kind == "deploy")
		if err != nil {
			return nil, err
		}
		return nil, e.printPlan(c, plan)
	}

	out := newProgress(e.io)
	opts.Observer = out.observer()
	out.start(kind + " " + opts.ID)
	defer out.stop()
	switch kind {
	case "deploy":
		return orchestrate.Deploy(ctx, client, *opts)
	case "watch":
		return orchestrate.Watch(ctx, client, *opts)
	}
	return orchestrate.Run(ctx, client, *opts)
}

func checkDurations(c *cli.Context, names ...string) error {
	for _, n := range names {
		if c.Duration(n) <= 0 {
			return usageErrorf("--%s must be positive (got %s)", n, c.Duration(n))
		}
	}
	return nil
}

// printPlan shows what --dry-run found: the targets, the masters and what
// would be sent.
func (e *cliEnv) printPlan(c *cli.Context, p *orchestrate.Plan) error {
	if jsonOutput(c) {
		return render.JSON(e.io.Out, planJSONDoc{planSchema, p})
	}
	out := e.io.Out
	fmt.Fprintf(out, "dry run of %s %s: nothing was sent\n", p.Kind, p.ID)
	fmt.Fprintf(out, "targets (%d, %s): %s\n", len(p.Targets), p.Filter, strings.Join(p.Targets, " "))
	if len(p.Masters) > 0 {
		fmt.Fprintf(out, "masters (%d): %s\n", len(p.Masters), strings.Join(p.Masters, " "))
	}
	size := ""
	if p.EventSize > 0 {
		size = fmt.Sprintf(" (%d of serf's 512 bytes)", p.EventSize)
	}
	fmt.Fprintf(out, "would send %s%s: %s\n", p.Send, size, p.Payload)
	return nil
}

// splaySeconds rounds --splay up to whole seconds, as the nodes take it;
// a negative one stays negative, for the check to refuse.
func splaySeconds(d time.Duration) int {
	if d <= 0 {
		return int(d / time.Second)
	}
	return int((d + time.Second - 1) / time.Second)
}
