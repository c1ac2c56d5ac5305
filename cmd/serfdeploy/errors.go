package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/serfdeploy/serfdeploy/internal/redact"
	"github.com/serfdeploy/serfdeploy/logclient"
	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// exitError carries an exit code decided by a command whose message has
// already been printed (e.g. a deploy that failed and showed its summary).
type exitError struct{ code int }

func (e exitError) Error() string { return "" }

// explain turns any error into the exit code it stands for and the one
// line the user reads. This is the only place that does so.
func explain(err error) (int, string) {
	code, msg := classify(err)
	// Every message is the logging client's or serf's own, already clean;
	// this second pass keeps a URL's password out of any line whatever
	// code builds it in future.
	return code, redact.Text(msg)
}

func classify(err error) (int, string) {
	var (
		exit  exitError
		usage usageError
		orch  *orchestrate.Error
		act   actionError
	)
	switch {
	case errors.As(err, &exit):
		return exit.code, ""
	case errors.As(err, &usage):
		return orchestrate.ExitUsage, usage.Error() + hint(usage.Error())
	case errors.As(err, &orch):
		return orch.Code, orch.Error()
	case errors.Is(err, serfrpc.ErrUnreachable), errors.Is(err, serfrpc.ErrAuth), errors.Is(err, serfrpc.ErrGone):
		return orchestrate.ExitInfra, err.Error()
	case errors.Is(err, logclient.ErrUnreachable), errors.Is(err, logclient.ErrUnauthorized), errors.Is(err, logclient.ErrBadResponse):
		return orchestrate.ExitInfra, err.Error()
	case errors.As(err, &act):
		// An error from our own code that is none of the above, e.g. a
		// report file that cannot be written.
		return orchestrate.ExitInfra, act.Error()
	default:
		// urfave/cli's own complaint about the command line.
		return orchestrate.ExitUsage, err.Error() + hint(err.Error())
	}
}

func hint(msg string) string {
	if strings.Contains(msg, "see `serfdeploy") {
		return ""
	}
	return "; see `serfdeploy --help`"
}

// asInterrupt: once SIGINT or SIGTERM (a Jenkins abort) has ended ctx, an
// infrastructure error on the way out is the interrupt's doing (a read or a
// connection cut short), and the documented code for an interrupt is 4.
// Bad input stays bad input.
func asInterrupt(ctx context.Context, err error) error {
	var decided exitError // a command that printed its result decided already
	if err == nil || ctx.Err() == nil || errors.As(err, &decided) {
		return err
	}
	if code, _ := explain(err); code != orchestrate.ExitInfra {
		return err
	}
	return &orchestrate.Error{Code: orchestrate.ExitIncomplete, Err: fmt.Errorf("interrupted: %w", err)}
}
