package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/internal/render"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

func statusCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show each matching node's Puppet state now, or its phase of one deploy",
		Description: "Without --id: each node is idle or running (with the deploy id), and its last run's result\n" +
			"and age. With --id: each node's phase of that deploy, and the exit code deploy would give.\n" +
			"Exits 4 when a node did not answer.",
		Flags: concat(rpcFlags(), outputFlags(), filterFlags(), []cli.Flag{
			&cli.StringFlag{Name: "id", Usage: "a deploy id: show each node's phase of it"},
			queryTimeoutFlag(),
		}),
		Action: action(func(c *cli.Context) error {
			check := func(f serfrpc.Filter) error {
				if err := checkDurations(c, "query-timeout"); err != nil {
					return err
				}
				return orchestrate.CheckStatus(f, c.String("id"))
			}
			return env.withAgent(c, check, func(client *serfrpc.Client, f serfrpc.Filter) error {
				rep, err := orchestrate.Status(c.Context, client, f, c.String("id"), c.Duration("query-timeout"))
				if err != nil {
					return err
				}
				if jsonOutput(c) {
					err = render.JSON(env.io.Out, statusJSONDoc{statusSchema, rep})
				} else {
					err = printStatus(env, rep)
				}
				if err != nil {
					return err
				}
				return exitError{rep.ExitCode}
			})
		}),
	}
}

// queryTimeoutFlag is status's, enable's and disable's: each asks the nodes
// once and waits as long for their answers.
func queryTimeoutFlag() cli.Flag {
	return &cli.DurationFlag{Name: "query-timeout", Value: 5 * time.Second, Usage: "how long to wait for slow nodes"}
}

func printStatus(env *cliEnv, rep *orchestrate.StatusReport) error {
	if err := render.StatusTable(env.io.Out, rep, time.Now()); err != nil {
		return err
	}
	if rep.Note != "" {
		fmt.Fprintf(env.io.ErrOut, "serfdeploy: %s (exit %d)\n", rep.Note, rep.ExitCode)
	}
	return nil
}
