// Command serfdeploy ships Puppet code to a fleet and drives and watches
// Puppet runs through HashiCorp Serf.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/serfdeploy/serfdeploy/internal/iostreams"
)

func main() {
	// Jenkins aborts a build with SIGTERM: the watch then stops, prints what
	// it knows and exits 4, instead of dying mid-line.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, iostreams.System(), os.Getenv)
	stop()
	os.Exit(code)
}
