// Command serfdeploy ships Puppet code to a fleet and drives and watches
// Puppet runs through HashiCorp Serf.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/serfdeploy/serfdeploy/handler"
	"github.com/serfdeploy/serfdeploy/internal/iostreams"
)

func main() {
	// An agent registered without serfdeploy's event filter forks `handle`
	// for every member event on every node; those, and an operator's own
	// events and queries, end here, before the command line, the config or
	// the log are looked at.
	if len(os.Args) > 1 && os.Args[1] == "handle" && os.Getenv("SERF_EVENT") != "" && !handler.Serves(os.Getenv) {
		os.Exit(0)
	}
	// Jenkins aborts a build with SIGTERM: the watch then stops, prints what
	// it knows and exits 4, instead of dying mid-line.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, iostreams.System(), os.Getenv)
	stop()
	os.Exit(code)
}
