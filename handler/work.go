package handler

import (
	"context"
	"fmt"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// Work runs one detached worker job. Ending ctx asks it to stop: a run's
// Puppet gets SIGTERM and killGrace to finish, then SIGKILL; closing now
// (a second signal) kills Puppet at once. Either way the run is recorded,
// as interrupted.
func (n *Node) Work(ctx context.Context, now <-chan struct{}, kind, id string) error {
	n.killNow = now
	if kind != WorkFlush && kind != WorkFacts {
		if err := protocol.ValidID(id); err != nil {
			return err
		}
	}
	switch kind {
	case WorkRun:
		return n.workRun(ctx, id)
	case WorkSync:
		return n.workSync(ctx, id)
	case WorkFacts:
		return n.workFacts(ctx)
	case WorkFlush:
		client, err := n.logClient()
		if err != nil || client == nil {
			return err
		}
		n.flush(ctx, client, 10*time.Minute)
		return nil
	}
	return fmt.Errorf("unknown worker kind %q", kind)
}
