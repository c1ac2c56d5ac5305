package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/logclient"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// Output formats of --format.
const (
	formatText = "text"
	formatJSON = "json"
)

// rpcFlags follow serf's own CLI: same names, same environment variables.
func rpcFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "rpc-addr", Value: serfrpc.DefaultAddr, EnvVars: []string{"SERF_RPC_ADDR"}, Usage: "RPC address of the local serf agent"},
		&cli.StringFlag{Name: "rpc-auth", EnvVars: []string{"SERF_RPC_AUTH"}, Usage: "RPC auth key of the serf agent"},
	}
}

func outputFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "format", Value: formatText, Usage: "output format: text or json (json: one document on stdout, nothing else)"},
		&cli.StringFlag{Name: "color", Value: "auto", Usage: "colour: auto (only on a terminal; NO_COLOR, CLICOLOR=0 or TERM=dumb turn it off, CLICOLOR_FORCE on without a terminal), always or never"},
	}
}

func filterFlags() []cli.Flag {
	return append([]cli.Flag{
		// Taken whole: a regexp may hold a comma, which StringSliceFlag
		// would split ("fqdn=web-0[1,2]" failed as `"2]" must be key=regexp`).
		&cli.GenericFlag{Name: "tag", Value: &repeatable{}, Usage: "only nodes whose tag matches: key=regexp (whole value), repeatable"},
		&cli.GenericFlag{Name: "node", Value: &repeatable{}, Usage: "only this node (exact name), repeatable"},
	}, selectFlags()...) // select.go
}

// reportFlags name the files a deploy's result is written to.
func reportFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "junit", Usage: "write a JUnit XML report (one test case per node) to this file"},
		&cli.StringFlag{Name: "summary-file", Usage: "write a Markdown summary to this file"},
		&cli.StringFlag{Name: "result-file", Usage: "write the JSON result to this file (whatever --format is)"},
		&cli.StringFlag{Name: "html-report", Usage: "write a self-contained HTML page (outcome, per-node timeline, failures) to this file"},
	}
}

func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-url", EnvVars: []string{"SERFDEPLOY_LOG_URL"}, Usage: "Loki base URL (e.g. http://loki:3100); without it final statuses come from the nodes' answers"},
		&cli.StringFlag{Name: "log-tenant", EnvVars: []string{"SERFDEPLOY_LOG_TENANT"}, Usage: "Loki tenant (X-Scope-OrgID)"},
		&cli.StringFlag{Name: "log-user", EnvVars: []string{"SERFDEPLOY_LOG_USER"}, Usage: "basic auth user for Loki"},
		&cli.StringFlag{Name: "log-password", EnvVars: []string{"SERFDEPLOY_LOG_PASSWORD"}, Usage: "basic auth password for Loki (prefer the environment variable)"},
		&cli.StringFlag{Name: "log-token", EnvVars: []string{"SERFDEPLOY_LOG_TOKEN"}, Usage: "bearer token for Loki (prefer the environment variable)"},
		&cli.StringFlag{Name: "log-ca-file", EnvVars: []string{"SERFDEPLOY_LOG_CA_FILE"}, Usage: "CA certificate file for Loki over TLS"},
		&cli.StringFlag{Name: "log-job", Value: "serfdeploy", EnvVars: []string{"SERFDEPLOY_LOG_JOB"}, Usage: "the job label the nodes' records carry"},
	}
}

// setup applies the output flags; every command calls it first.
func (e *cliEnv) setup(c *cli.Context) error {
	switch f := c.String("format"); f {
	case "", formatText, formatJSON:
	default:
		return usageErrorf("--format %q is not one of text, json", f)
	}
	if err := e.io.SetColorMode(c.String("color")); err != nil {
		return usageError{err}
	}
	return nil
}

func jsonOutput(c *cli.Context) bool { return c.String("format") == formatJSON }

// filterFrom parses --tag and --node.
func filterFrom(c *cli.Context) (serfrpc.Filter, error) {
	f := serfrpc.Filter{Nodes: repeated(c, "node")}
	listed, err := nodesFromFile(c) // --nodes FILE, select.go
	if err != nil {
		return f, err
	}
	f.Nodes = append(f.Nodes, listed...)
	for _, t := range repeated(c, "tag") {
		k, re, err := serfrpc.ParseTag(t)
		if err != nil {
			return f, usageError{err}
		}
		if f.Tags == nil {
			f.Tags = map[string]string{}
		}
		if old, dup := f.Tags[k]; dup {
			return f, usageErrorf("--tag %s given twice (%s and %s); combine them in one regexp, e.g. %s=(%s|%s)", k, old, re, k, old, re)
		}
		f.Tags[k] = re
	}
	return f, nil
}

// withAgent is what the commands that ask the nodes something share: the
// output flags applied, --tag/--node parsed, the command's own checks made
// before connecting, then fn with a connection to the local serf agent.
func (e *cliEnv) withAgent(c *cli.Context, check func(serfrpc.Filter) error, fn func(*serfrpc.Client, serfrpc.Filter) error) error {
	if err := e.setup(c); err != nil {
		return err
	}
	f, err := filterFrom(c)
	if err != nil {
		return err
	}
	selection, err := selectionFrom(c)
	if err != nil {
		return err
	}
	if err := check(f); err != nil {
		return err
	}
	client, err := connect(c.Context, c)
	if err != nil {
		return err
	}
	defer client.Close()
	// --fact, --class, --select: the nodes are asked, and f becomes their
	// names (select.go).
	if f, err = selected(c.Context, c, client, f, selection); err != nil {
		return err
	}
	return fn(client, f)
}

// connect opens the serf RPC connection; the caller closes it.
func connect(ctx context.Context, c *cli.Context) (*serfrpc.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return serfrpc.Connect(ctx, serfrpc.Config{Addr: c.String("rpc-addr"), AuthKey: c.String("rpc-auth")})
}

// logClient returns the logging service's client, or nil when --log-url is
// not set.
func logClient(c *cli.Context) (*logclient.Client, error) {
	if c.String("log-url") == "" {
		return nil, nil
	}
	client, err := logclient.New(logclient.Config{
		URL: c.String("log-url"), TenantID: c.String("log-tenant"),
		Username: c.String("log-user"), Password: c.String("log-password"),
		BearerToken: c.String("log-token"), CAFile: c.String("log-ca-file"),
		Job: c.String("log-job"),
	})
	if err != nil {
		return nil, usageError{fmt.Errorf("--log-url: %w", err)}
	}
	return client, nil
}

// repeatable is a flag that may be given many times, each value taken
// whole: urfave/cli's StringSliceFlag would split "team=web,ops" or a
// regexp's "[1,2]" at the comma.
type repeatable []string

func (r *repeatable) Set(v string) error { *r = append(*r, v); return nil }
func (r *repeatable) String() string     { return strings.Join(*r, " ") }

// repeated is the values of a repeatable flag, each as given.
func repeated(c *cli.Context, name string) []string {
	if r, ok := c.Generic(name).(*repeatable); ok && r != nil {
		return *r
	}
	return nil
}
