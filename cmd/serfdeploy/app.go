package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/serfdeploy/serfdeploy/internal/iostreams"
	"github.com/serfdeploy/serfdeploy/orchestrate"
)

// cliEnv is what every command needs from the process.
type cliEnv struct {
	io     *iostreams.IOStreams
	getenv func(string) string
}

// run builds the app, runs it and turns its error into one line on stderr
// and an exit code. It is main without os.Exit, for tests.
func run(ctx context.Context, args []string, streams *iostreams.IOStreams, getenv func(string) string) (code int) {
	// A bug must still end in one line and a documented code, never a
	// stack trace in a CI log or, under serf, in a query's answer.
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(streams.ErrOut, "serfdeploy: internal error: %v (please report it with the command line)\n", p)
			code = orchestrate.ExitInfra
		}
	}()
	// The serf client library logs through the standard logger ("[ERR]
	// Dropping query response..."): that is not for the user's console or
	// a Jenkins log. SERFDEPLOY_DEBUG=1 shows it on stderr.
	log.SetOutput(io.Discard)
	if getenv("SERFDEPLOY_DEBUG") != "" {
		log.SetOutput(streams.ErrOut)
	}
	env := &cliEnv{io: streams, getenv: getenv}
	var notFound string
	app := newApp(env, &notFound)
	err := app.RunContext(ctx, flagsFirst(args))
	if notFound != "" {
		err = usageErrorf("unknown command %q; see `serfdeploy --help`", notFound)
	}
	if err == nil {
		return orchestrate.ExitOK
	}
	code, msg := explain(asInterrupt(ctx, err))
	if msg != "" {
		fmt.Fprintln(streams.ErrOut, "serfdeploy: "+msg)
	}
	return code
}

func newApp(env *cliEnv, notFound *string) *cli.App {
	app := &cli.App{
		Name:  "serfdeploy",
		Usage: "ship Puppet code and drive Puppet runs through serf",
		Description: "serfdeploy talks to the local serf agent over its RPC. `deploy` ships a module at a git ref\n" +
			"to the Puppet masters and watches the Puppet runs it triggers to the end; `run` starts an\n" +
			"ad-hoc Puppet run; `status` shows each node's Puppet state; `report` reads a past deploy\n" +
			"back from the logging service. Each command's --help lists its own exit codes.\n\n" + exitCodesText(""),
		Version:              versionString(), // --version, -v and --help's VERSION
		Writer:               env.io.Out,
		ErrWriter:            env.io.ErrOut,
		HideHelpCommand:      false, // `serfdeploy help deploy` is `serfdeploy deploy --help`
		EnableBashCompletion: false,
		// Errors are printed and turned into exit codes in one place, run().
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		CommandNotFound: func(_ *cli.Context, name string) { *notFound = name },
		Commands: []*cli.Command{
			membersCommand(env),
			deployCommand(env),
			runCommand(env),
			statusCommand(env),
			summaryCommand(env),
			countCommand(env),
			watchCommand(env),
			disableCommand(env),
			enableCommand(env),
			reportCommand(env),
			handleCommand(env),
			workerCommand(env),
			installCommand(env),
			manCommand(env),        // hidden: for scripts/package.sh
			completionCommand(env), // hidden: for scripts/package.sh
		},
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
		// Each command shows its own codes (exitcodes.go), not deploy's.
		if codes := exitCodesText(c.Name); codes != "" && !c.Hidden {
			c.Description = strings.TrimPrefix(c.Description+"\n\n"+codes, "\n\n")
		}
	}
	return app
}

// usageError is bad input from the user: exit 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// actionError marks an error as coming from a command's own code; anything
// else that app.Run returns is urfave/cli complaining about the command
// line (a missing required flag, a bad duration), which is a usage error.
type actionError struct{ err error }

func (e actionError) Error() string { return e.err.Error() }
func (e actionError) Unwrap() error { return e.err }

// action wraps a command's function so its errors can be told apart from
// urfave/cli's own.
func action(fn func(*cli.Context) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() > 0 && !acceptsArgs(c.Command) {
			return usageErrorf("%s takes no arguments (got %q); flags go before or after it, e.g. --tag segment=qa", c.Command.Name, c.Args().First())
		}
		if err := fn(c); err != nil {
			var u usageError
			if errors.As(err, &u) {
				return err
			}
			return actionError{err}
		}
		return nil
	}
}

func acceptsArgs(c *cli.Command) bool { return c.ArgsUsage != "" }

// flagsFirst moves the positional argument of `report` and `watch` after
// their flags: urfave/cli stops parsing flags at the first positional one,
// and people write `serfdeploy report ID --format json`. Every flag of
// theirs but --help takes a value.
func flagsFirst(args []string) []string {
	if len(args) < 3 || (args[1] != "report" && args[1] != "watch") {
		return args
	}
	flags, positional := []string{}, []string{}
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		tok := rest[i]
		switch {
		case tok == "--":
			positional = append(positional, rest[i+1:]...)
			i = len(rest)
		case !strings.HasPrefix(tok, "-"):
			positional = append(positional, tok)
		case strings.Contains(tok, "=") || tok == "-h" || tok == "--help" || i+1 == len(rest):
			flags = append(flags, tok)
		default:
			flags = append(flags, tok, rest[i+1])
			i++
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	return append(out, positional...)
}
