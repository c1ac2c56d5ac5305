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
		Description: "Lists the members the local serf agent knows, like `serf members`, with the same\nanchored tag filters deploy and run use, so it shows exactly whom they would reach.",
		Flags: concat(rpcFlags(), outputFlags(), filterFlags(), []cli.Flag{
			&cli.StringFlag{Name: "status", Usage: "only members in this state: alive, failed, left or leaving"},
		}),
		Action: action(func(c *cli.Context) error {
			status := c.String("status")
			check := func(serfrpc.Filter) error {
				switch status {
				case "", serfrpc.StatusAlive, serfrpc.StatusFailed, serfrpc.StatusLeft, serfrpc.StatusLeaving:
					return nil
				}
				return usageErrorf("--status %q is not one of alive, failed, left, leaving", status)
			}
			return env.withAgent(c, check, func(client *serfrpc.Client, f serfrpc.Filter) error {
				members, err := client.Members(c.Context, f, status)
				if err != nil {
					return err
				}
				if jsonOutput(c) {
					if members == nil {
						members = []serfrpc.Member{}
					}
					return render.JSON(env.io.Out, membersJSONDoc{membersSchema, members})
				}
				return render.MembersTable(env.io.Out, members)
			})
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
