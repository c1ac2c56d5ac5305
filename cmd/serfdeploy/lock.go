package main

import (
	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/internal/render"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

func disableCommand(env *cliEnv) *cli.Command {
	return lockCommand(env, true, "disable Puppet on the matching nodes, with a reason (puppet agent --disable)",
		"Sets Puppet's own agent lock on each node (what `puppet agent --disable \"why\"` writes), so\n"+
			"no run starts there, from serfdeploy, cron or by hand, until `serfdeploy enable`. A node\n"+
			"already disabled keeps its reason. deploy and run report such nodes disabled (exit 1), or\n"+
			"skipped with --on-disabled skip. Needs --tag or --node. Exits 4 when a node did not answer.",
		&cli.StringFlag{Name: "message", Usage: "why, and who: shown on every refused run (required)"})
}

func enableCommand(env *cliEnv) *cli.Command {
	return lockCommand(env, false, "enable Puppet again on the matching nodes (puppet agent --enable)",
		"Clears Puppet's agent lock that `serfdeploy disable` or `puppet agent --disable` set. Needs\n"+
			"--tag or --node. Exits 4 when a node did not answer.")
}

func lockCommand(env *cliEnv, disable bool, usage, description string, own ...cli.Flag) *cli.Command {
	name := "enable"
	if disable {
		name = "disable"
	}
	return &cli.Command{
		Name: name, Usage: usage, Description: description,
		Flags: concat(rpcFlags(), outputFlags(), filterFlags(), own, []cli.Flag{queryTimeoutFlag()}),
		Action: action(func(c *cli.Context) error {
			check := func(f serfrpc.Filter) error {
				if f.Empty() && !hasSelection(c) {
					return usageErrorf("%s needs --tag or --node (or --nodes, --fact, --class, --select): it never acts on the whole fleet by default", name)
				}
				if disable && c.String("message") == "" {
					return usageErrorf(`disable needs --message "why, and who", e.g. --message "kernel upgrade, bob"`)
				}
				if disable {
					if err := protocol.ValidDisableMessage(c.String("message")); err != nil {
						return usageErrorf("--message: %w", err)
					}
				}
				return checkDurations(c, "query-timeout")
			}
			return env.withAgent(c, check, func(client *serfrpc.Client, f serfrpc.Filter) error {
				rep, err := orchestrate.SetPuppetLock(c.Context, client, f, disable, c.String("message"), c.Duration("query-timeout"))
				if err != nil {
					return err
				}
				if jsonOutput(c) {
					err = render.JSON(env.io.Out, lockJSONDoc{lockSchema, rep})
				} else {
					err = render.LockTable(env.io.Out, rep)
				}
				if err != nil {
					return err
				}
				return exitError{rep.ExitCode}
			})
		}),
	}
}
