package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/orchestrate"
)

func reportCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:      "report",
		Usage:     "show a past deploy's per-node result, read from the logging service alone",
		ArgsUsage: "DEPLOY-ID",
		Description: "Reads every node's records of DEPLOY-ID from the logging service (no serf agent needed)\n" +
			"and prints the summary deploy printed, with the same exit code.",
		Flags: concat(outputFlags(), logFlags(), reportFlags(), []cli.Flag{
			&cli.DurationFlag{Name: "since", Value: 7 * 24 * time.Hour, Usage: "how far back to search"},
		}),
		Action: action(func(c *cli.Context) error {
			if err := env.setup(c); err != nil {
				return err
			}
			if c.NArg() != 1 {
				return usageErrorf("report takes one deploy id, e.g. serfdeploy report jenkins-release-42")
			}
			if err := checkDurations(c, "since"); err != nil {
				return err
			}
			reports, err := checkReports(c)
			// From here on every end writes the reports asked for and, with
			// --format json, a document: a job archives them whatever
			// happened (an unknown id, exit 3, wrote none).
			ended := func(err error) error {
				return env.ended(c, "deploy", orchestrate.Options{ID: c.Args().First()}, reports, err)
			}
			if err != nil {
				return ended(err)
			}
			logs, err := logClient(c)
			if err != nil {
				return ended(err)
			}
			if logs == nil {
				return ended(usageErrorf("report reads the logging service: set --log-url or SERFDEPLOY_LOG_URL"))
			}
			res, err := orchestrate.Report(c.Context, logs, c.Args().First(), time.Now().Add(-c.Duration("since")))
			if err != nil {
				return ended(err)
			}
			// The same document as deploy's result: it says so.
			res.SchemaVersion = orchestrate.ResultSchema
			if err := env.writeResult(c, res, reports); err != nil {
				return err
			}
			return exitError{res.ExitCode}
		}),
	}
}
