package main

import (
	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/internal/render"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

func membersCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:        "members",
		Usage:       "list the cluster's members, filtered by tag and status",
		Description: "Lists the members the local serf agent knows, like `serf members`, with the same\nfilters deploy and run use (anchored tag regexps; facts and classes asked of the alive nodes),\nso it shows exactly whom they would reach.",
		Flags: concat(rpcFlags(), outputFlags(), filterFlags(), []cli.Flag{
			&cli.StringFlag{Name: "status", Usage: "only members in this state: alive, failed, left or leaving"},
		}),
		Action: action(func(c *cli.Context) error {
			status := c.String("status")
			check := func(serfrpc.Filter) error {
				switch status {
				case "", serfrpc.StatusAlive:
					return nil
				case serfrpc.StatusFailed, serfrpc.StatusLeft, serfrpc.StatusLeaving:
					if hasSelection(c) {
						return usageErrorf("--status %s with --fact, --class or --select: only alive nodes can be asked what Puppet knows", status)
					}
					return nil
				}
				return usageErrorf("--status %q is not one of alive, failed, left, leaving", status)
			}
			show := func(members []serfrpc.Member) error {
				if jsonOutput(c) {
					if members == nil {
						members = []serfrpc.Member{}
					}
					return render.JSON(env.io.Out, membersJSONDoc{membersSchema, members})
				}
				return render.MembersTable(env.io.Out, members)
			}
			err := env.withAgent(c, check, func(client *serfrpc.Client, f serfrpc.Filter) error {
				members, err := client.Members(c.Context, f, status)
				if err != nil {
					return err
				}
				return show(members)
			})
			if noneSelected(err) {
				return show(nil) // none matching --fact/--class/--select is still 0
			}
			return err
		}),
	}
}

func concat(groups ...[]cli.Flag) []cli.Flag {
	var out []cli.Flag
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}
