package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

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
			// A worker has its own session: the serf agent's signals do not
			// reach it. A SIGTERM sent to it (an operator, or systemd
			// stopping the whole unit) stops Puppet gracefully and records
			// the run as interrupted; a second one kills Puppet at once.
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
			defer signal.Stop(sigs)
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			now := make(chan struct{})
			go func() {
				<-sigs
				stop()
				<-sigs
				close(now)
			}()
			return node.Work(ctx, now, c.Args().Get(0), c.Args().Get(1))
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
