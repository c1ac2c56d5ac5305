package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/internal/nodesetup"
)

func installCommand(env *cliEnv) *cli.Command {
	var tags, removeTags, joins, modules repeatable
	return &cli.Command{
		Name:  "install",
		Usage: "write this node's serf config, node.yaml and systemd drop-in; re-run it to change them",
		// UsageText, not Description: app.go appends the deploy exit-code
		// table to every Description, and install's codes are its own.
		UsageText: "serfdeploy install [--role master|agent] [--tag k=v]... [--join HOST]... [--encrypt-key KEY] [--rpc-auth KEY] ...\n\n" +
			"Writes /etc/serf/serf.json (serfdeploy's event handler, tags, join address, RPC key),\n" +
			"the keyring /etc/serf/serf.keyring, /etc/serfdeploy/node.yaml and, with --systemd, the drop-in\n" +
			"/etc/systemd/system/serf.service.d/serfdeploy.conf for Debian's serf unit. A setting given\n" +
			"replaces what the files say; one not given is kept. Prints one line per change (a key only\n" +
			"as \"(changed)\") or \"nothing changed\". Files holding a key are 0600, the others 0644,\n" +
			"whatever the umask. The defaults suit Debian's puppet-agent. Puppet's own packages put\n" +
			"puppet in /opt/puppetlabs/bin, which the drop-in adds to the handler's PATH, and keep its\n" +
			"state elsewhere: give --puppet-summary-file and --puppet-state-dir from\n" +
			"`puppet config print lastrunfile statedir`.\n" +
			"Exit 0 done, 2 bad input (nothing written), 5 a file could not be read or written.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Value: "/", Usage: "install under this directory instead of / (for tests; every path written is under it)"},
			&cli.StringFlag{Name: "binary", Usage: "the serfdeploy binary serf runs as its handler (default: this binary, e.g. /usr/bin/serfdeploy from the package; with --root, ROOT/usr/local/bin/serfdeploy)"},
			&cli.StringFlag{Name: "role", Usage: "master or agent (a first install: agent)"},
			&cli.StringFlag{Name: "node-name", Usage: "serf node name (a first install: the host's full name)"},
			&cli.GenericFlag{Name: "tag", Value: &tags, Usage: "serf tag key=value to set, repeatable (the value is taken whole)"},
			&cli.GenericFlag{Name: "remove-tag", Value: &removeTags, Usage: "serf tag to remove, repeatable"},
			&cli.GenericFlag{Name: "join", Value: &joins, Usage: "address of a node to join (serf retry_join), repeatable; replaces the list"},
			&cli.StringFlag{Name: "rpc-auth", Usage: "serf's RPC auth key, in serf.json and node.yaml"},
			&cli.StringFlag{Name: "encrypt-key", Usage: "serf's gossip key (serf keygen), the same on every node: the keyring's primary key"},
			&cli.StringFlag{Name: "log-url", Usage: "Loki base URL the node sends its run records to (logging.url)"},
			&cli.StringFlag{Name: "git-url", Usage: "a master's git URL for modules not given with --module; {module} is replaced (master.git_url)"},
			&cli.GenericFlag{Name: "module", Value: &modules, Usage: "a master's module NAME=GIT_URL (master.modules), repeatable"},
			&cli.StringFlag{Name: "puppet-command", Usage: "the Puppet run, split at spaces (puppet.command), e.g. \"puppet agent --test --detailed-exitcodes --environment {environment}\""},
			&cli.StringFlag{Name: "puppet-summary-file", Usage: "Puppet's lastrunfile (puppet.summary_file); Puppet's own packages: what \"puppet config print lastrunfile\" prints"},
			&cli.StringFlag{Name: "puppet-state-dir", Usage: "Puppet's statedir (puppet.state_dir); Puppet's own packages: what \"puppet config print statedir\" prints"},
			&cli.BoolFlag{Name: "systemd", Usage: "also write the systemd drop-in for Debian's serf unit (and daemon-reload when systemd runs)"},
		},
		Action: action(func(c *cli.Context) error {
			binary := c.String("binary")
			if binary == "" && (c.String("root") == "" || c.String("root") == "/") {
				// The binary that is installing is the one to register:
				// /usr/bin from the package, /usr/local/bin from install.sh.
				binary = runningBinary()
			}
			o := nodesetup.Options{
				Root:       c.String("root"),
				Binary:     binary,
				Role:       c.String("role"),
				NodeName:   c.String("node-name"),
				RemoveTags: removeTags,
				Join:       joins,
				RPCAuth:    c.String("rpc-auth"),
				EncryptKey: c.String("encrypt-key"),
				LogURL:     c.String("log-url"),
				GitURL:     c.String("git-url"),
				Systemd:    c.Bool("systemd"),

				PuppetSummaryFile: c.String("puppet-summary-file"),
				PuppetStateDir:    c.String("puppet-state-dir"),
			}
			var err error
			if o.Tags, err = keyValues("--tag", tags); err != nil {
				return err
			}
			if o.Modules, err = keyValues("--module", modules); err != nil {
				return err
			}
			if c.IsSet("puppet-command") {
				if o.PuppetCommand = strings.Fields(c.String("puppet-command")); len(o.PuppetCommand) == 0 {
					return usageErrorf("--puppet-command is empty")
				}
			}
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			r, err := nodesetup.Install(o)
			if err == nil {
				fmt.Fprint(env.io.Out, r.Summary())
				for _, w := range r.Warnings {
					fmt.Fprintln(env.io.ErrOut, "serfdeploy: warning: "+w)
				}
			}
			var input *nodesetup.InputError
			if errors.As(err, &input) {
				return usageError{err}
			}
			return err
		}),
	}
}

// keyValues parses repeated key=value flags; a key given twice is refused
// rather than one of them silently winning.
func keyValues(flag string, vals []string) (map[string]string, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range vals {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("%s %q must be key=value", flag, kv)
		}
		if _, dup := m[k]; dup {
			return nil, usageErrorf("%s %s given twice", flag, k)
		}
		m[k] = v
	}
	return m, nil
}

// runningBinary is this program's resolved path, or "" (the install's
// default) when it cannot be told.
func runningBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		return resolved
	}
	return exe
}
