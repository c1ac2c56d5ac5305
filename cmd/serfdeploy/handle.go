package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/handler"
)

func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Value: "/etc/serfdeploy/node.yaml", EnvVars: []string{"SERFDEPLOY_CONFIG"}, Usage: "the node's config file"}
}

func handleCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "handle",
		Usage: "serf event handler: `serf agent -event-handler \"serfdeploy handle --config FILE\"`",
		Description: "Run by the serf agent for every event and query. Answers deploy (masters), puppetrun and\n" +
			"puppet-status at once and leaves long work (git, puppet) to detached workers; runs the\n" +
			"operator's own user-NAME and query-NAME executables from the handlers directory.",
		Flags: []cli.Flag{configFlag()},
		Action: action(func(c *cli.Context) error {
			node, err := loadNode(c, env)
			if err != nil {
				return err
			}
			err = node.Handle(c.Context, env.io.In, env.io.Out)
			if errors.Is(err, handler.ErrNotSerf) {
				return usageError{err}
			}
			return err
		}),
	}
}

func workerCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:      "worker",
		Hidden:    true, // started by the handler, detached, never by people
		ArgsUsage: "KIND [ID]",
		Flags:     []cli.Flag{configFlag()},
		Action: action(func(c *cli.Context) error {
			node, err := loadNode(c, env)
			if err != nil {
				return err
			}
			// A worker outlives the serf agent and ignores its signals: it
			// has its own session and no parent waiting for it.
			return node.Work(context.Background(), c.Args().Get(0), c.Args().Get(1))
		}),
	}
}

func loadNode(c *cli.Context, env *cliEnv) (*handler.Node, error) {
	path := c.String("config")
	cfg, err := handler.LoadConfig(path)
	if err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	return handler.NewNode(cfg, path, env.getenv)
}
