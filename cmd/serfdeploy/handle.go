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
	"github.com/serfdeploy/serfdeploy/protocol"
)

func configFlag() cli.Flag {
	return &cli.StringFlag{Name: "config", Value: "/etc/serfdeploy/node.yaml", EnvVars: []string{"SERFDEPLOY_CONFIG"}, Usage: "the node's config file"}
}

func handleCommand(env *cliEnv) *cli.Command {
	return &cli.Command{
		Name:  "handle",
		Usage: "serf event handler: `serf agent -event-handler \"" + protocol.HandlerFilter() + "=serfdeploy handle --config FILE\"`",
		Description: "Run by the serf agent for serfdeploy's event and queries, which the filter before \"=\" names.\n" +
			"Answers deploy (masters), puppetrun, puppet-status, puppet-disable and puppet-enable at once and\n" +
			"leaves long work (git, puppet) to detached workers. Any other event (registered without the\n" +
			"filter) exits 0 at once; an operator's own handlers are a second -event-handler, e.g.\n" +
			"scripts/handler-router.sh.",
		Flags: []cli.Flag{configFlag()},
		Action: action(func(c *cli.Context) error {
			// A person running it by hand made a usage error (exit 2),
			// whatever the config says: tell them so before reading it.
			if env.getenv("SERF_EVENT") == "" {
				return usageError{handler.ErrNotSerf}
			}
			node, err := loadNode(c, env)
			if err != nil {
				return err
			}
			err = node.Handle(env.io.In, env.io.Out)
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
