package main

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/internal/render"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// summarySchema is the version of summary's --format json document
// (docs/json-schema.json, $defs/summary).
const summarySchema = 1

type summaryJSONDoc struct {
	SchemaVersion int `json:"schema_version"`
	*orchestrate.SummaryReport
}

func summaryCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "summary",
		Usage: "sum up the matching nodes' last Puppet runs, whoever made them (like mco puppet summary)",
		Description: "Asks each matching node for Puppet's own state (its last_run_summary.yaml and lock files):\n" +
			"min, avg and max of the last run's age, config retrieval and run time, and resources\n" +
			"(total, changed, failed, out of sync), then the nodes whose last run is oldest or failed,\n" +
			"the disabled ones, those running now, those that did not answer and those whose Puppet\n" +
			"state cannot be read. Runs made outside serfdeploy (the agent daemon, cron, by hand) count\n" +
			"as well. Exits 4 when a node did not answer.",
		Flags: concat(rpcFlags(), outputFlags(), filterFlags(), []cli.Flag{queryTimeoutFlag()}),
		Action: action(func(c *cli.Context) error {
			return env.withAgent(c, checkFleetView(c), func(client *serfrpc.Client, f serfrpc.Filter) error {
				rep, err := orchestrate.Summary(c.Context, client, f, c.Duration("query-timeout"))
				if err != nil {
					return err
				}
				if jsonOutput(c) {
					err = render.JSON(env.io.Out, summaryJSONDoc{summarySchema, rep})
				} else {
					err = render.SummaryText(env.io.Out, rep, time.Now())
				}
				if err != nil {
					return err
				}
				return exitError{rep.ExitCode}
			})
		}),
	}
}

// checkFleetView is summary's and count's check before connecting.
func checkFleetView(c *cli.Context) func(serfrpc.Filter) error {
	return func(f serfrpc.Filter) error {
		if err := checkDurations(c, "query-timeout"); err != nil {
			return err
		}
		return orchestrate.CheckFilter(f)
	}
}
