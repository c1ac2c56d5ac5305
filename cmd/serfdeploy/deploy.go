package main

import (
	"context"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/logclient"
	"github.com/serfdeploy/serfdeploy/orchestrate"
)

func watchFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "id", Usage: "deploy id (default: Jenkins' BUILD_TAG when set, else a generated time-sortable id)"},
		&cli.StringFlag{Name: "environment", Usage: "Puppet environment (default: each node's configured one)"},
		&cli.StringFlag{Name: "master-tag", Value: "role=puppetmaster", Usage: "key=regexp naming the Puppet masters"},
		&cli.DurationFlag{Name: "timeout", Value: 30 * time.Minute, Usage: "give up on nodes still running after this long (exit 4)"},
		&cli.DurationFlag{Name: "poll-interval", Value: 2 * time.Second, Usage: "time between status polls"},
		&cli.DurationFlag{Name: "query-timeout", Value: 5 * time.Second, Usage: "how long one status poll waits for slow nodes"},
		&cli.DurationFlag{Name: "missed-after", Value: 20 * time.Second, Usage: "a target that knows nothing of the run this long after the trigger is reported missed"},
		&cli.DurationFlag{Name: "log-wait", Value: 30 * time.Second, Usage: "how long to wait for the nodes' finished records in the logging service"},
		&cli.StringFlag{Name: "junit", Usage: "write a JUnit XML report (one test case per node) to this file"},
		&cli.StringFlag{Name: "summary-file", Usage: "write a Markdown summary to this file"},
		&cli.StringFlag{Name: "result-file", Usage: "write the JSON result to this file (whatever --format is)"},
	}
}

func deployCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "deploy",
		Usage: "ship a module at a git ref to the masters and watch the Puppet runs to the end",
		Description: "Fires serf's `deploy` event: each Puppet master fetches the module at --ref from git, installs\n" +
			"it atomically into the environment's modulepath and triggers a Puppet run on the targets (the\n" +
			"alive nodes matching --tag/--node; with no filter, every node but the masters). serfdeploy then\n" +
			"polls every target until it has finished, failed or is lost, prints a summary and exits.",
		Flags: concat(rpcFlags(), outputFlags(), filterFlags(), []cli.Flag{
			&cli.StringFlag{Name: "module", Usage: "Puppet module name (required)"},
			&cli.StringFlag{Name: "ref", Usage: "git branch, tag or commit to deploy (required)"},
		}, watchFlags(), logFlags()),
		Action: action(func(c *cli.Context) error {
			return env.watchCommand(c, "deploy")
		}),
	}
}

func runCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "run",
		Usage: "start a Puppet run on the matching nodes (no code deploy) and watch it to the end",
		Description: "What `mco puppet runonce` does: fires the `puppetrun` query at the matching nodes (with no\n" +
			"filter, every node but the masters) and watches the runs like deploy does. Nodes already\n" +
			"running Puppet answer busy.",
		Flags: concat(rpcFlags(), outputFlags(), filterFlags(), watchFlags(), logFlags()),
		Action: action(func(c *cli.Context) error {
			return env.watchCommand(c, "run")
		}),
	}
}

// watchCommand runs a deploy or a run and reports it.
func (e *cliEnv) watchCommand(c *cli.Context, kind string) error {
	if err := e.setup(c); err != nil {
		return err
	}
	f, err := filterFrom(c)
	if err != nil {
		return err
	}
	id := c.String("id")
	if id == "" {
		id = defaultID(e.getenv, time.Now())
	}
	opts := orchestrate.Options{
		ID: id, Module: c.String("module"), Ref: c.String("ref"), Environment: c.String("environment"),
		Filter: f, MasterTag: c.String("master-tag"), Build: buildFromEnv(e.getenv),
		Timeout: c.Duration("timeout"), PollInterval: c.Duration("poll-interval"),
		QueryTimeout: c.Duration("query-timeout"), MissedAfter: c.Duration("missed-after"),
		LogWait: c.Duration("log-wait"),
	}
	if err := checkDurations(c, "timeout", "poll-interval", "query-timeout", "missed-after", "log-wait"); err != nil {
		return err
	}
	if kind == "deploy" {
		for _, name := range []string{"module", "ref"} {
			if c.String(name) == "" {
				return usageErrorf("deploy needs --%s, e.g. serfdeploy deploy --module profile_web --ref v1.2.0 --tag segment=qa", name)
			}
		}
	}
	// Bad input is refused before anything is sent or even connected to.
	if err := orchestrate.Check(opts, kind == "deploy"); err != nil {
		return err
	}
	logs, err := logClient(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	if logs != nil {
		// Fail before deploying anything when the logging service the final
		// statuses will come from is down or refuses us.
		if err := preflightLog(ctx, logs, id); err != nil {
			return err
		}
		opts.Log = logs
	}
	client, err := connect(ctx, c)
	if err != nil {
		return err
	}
	defer client.Close()

	out := newProgress(e.io)
	opts.Observer = out.observer()
	out.note(fmt.Sprintf("%s id %s", kind, id))
	out.start(kind + " " + id)
	var res *orchestrate.Result
	if kind == "deploy" {
		res, err = orchestrate.Deploy(ctx, client, opts)
	} else {
		res, err = orchestrate.Run(ctx, client, opts)
	}
	out.stop()
	if res == nil {
		return err
	}
	if werr := e.writeResult(c, res); werr != nil {
		return werr
	}
	if err != nil {
		// The summary above shows the nodes; the one line says why it ended.
		code, msg := explain(err)
		if !jsonOutput(c) && msg != "" {
			fmt.Fprintln(e.io.ErrOut, "serfdeploy: "+msg)
		}
		return exitError{code}
	}
	return exitError{res.ExitCode}
}

func checkDurations(c *cli.Context, names ...string) error {
	for _, n := range names {
		if c.Duration(n) <= 0 {
			return usageErrorf("--%s must be positive (got %s)", n, c.Duration(n))
		}
	}
	return nil
}

// preflightLog reads the logging service once, which proves it is up and
// takes our credentials.
func preflightLog(ctx context.Context, logs *logclient.Client, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	now := time.Now()
	if _, err := logs.Records(ctx, id, now.Add(-time.Minute), now); err != nil {
		return fmt.Errorf("the logging service, where final statuses come from, cannot be read (nothing was deployed): %w", err)
	}
	return nil
}
