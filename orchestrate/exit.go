// Package orchestrate is the deploy workflow: resolve the targets, fire the
// deploy or the run, watch every node to the end, and decide the one exit
// code a CI job gates on.
package orchestrate

import "fmt"

// Exit codes are an API: CI jobs gate on them. README.md and --help list them.
const (
	ExitOK         = 0 // every target finished without failures (with or without changes)
	ExitFailed     = 1 // a puppet run failed on at least one node, or a target was disabled or busy and did not apply the release
	ExitUsage      = 2 // usage or bad input
	ExitNoTargets  = 3 // no alive node matched the filters
	ExitIncomplete = 4 // timed out, or a node was lost before finishing (and no run failed)
	ExitInfra      = 5 // infrastructure: serf agent unreachable or auth refused, no master, code sync failed, logging service unreachable
	ExitPending    = 6 // --noop: every target finished without failures and some would change (drift)
)

// Error is an error that carries the exit code it stands for.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error with a formatted message (and %w wrapping).
func Errorf(code int, format string, args ...any) error {
	return &Error{Code: code, Err: fmt.Errorf(format, args...)}
}
