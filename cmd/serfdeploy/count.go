package main

import (
	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/internal/render"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// countSchema is the version of count's --format json document
// (docs/json-schema.json, $defs/count).
const countSchema = 1

type countJSONDoc struct {
	SchemaVersion int `json:"schema_version"`
	*orchestrate.CountReport
}

func countCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "count",
		Usage: "count the matching nodes running Puppet, idle, disabled or silent (like mco puppet count)",
		Description: "Asks each matching node whether Puppet is applying a catalog now (whoever started it:\n" +
			"serfdeploy, the agent daemon, cron, by hand), idle or disabled, and whether the agent\n" +
			"daemon runs (its pidfile, node.yaml puppet.pidfile). A node running while disabled counts\n" +
			"as running. Exits 4 when a node did not answer.",
		Flags: concat(rpcFlags(), outputFlags(), filterFlags(), []cli.Flag{queryTimeoutFlag()}),
		Action: action(func(c *cli.Context) error {
			return env.withAgent(c, checkFleetView(c), func(client *serfrpc.Client, f serfrpc.Filter) error {
				rep, err := orchestrate.Count(c.Context, client, f, c.Duration("query-timeout"))
				if err != nil {
					return err
				}
				if jsonOutput(c) {
					err = render.JSON(env.io.Out, countJSONDoc{countSchema, rep})
				} else {
					err = render.CountText(env.io.Out, rep)
				}
				if err != nil {
					return err
				}
				return exitError{rep.ExitCode}
			})
		}),
	}
}
