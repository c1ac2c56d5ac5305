package handler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// ErrNotSerf means the handler was started outside serf.
var ErrNotSerf = errors.New("SERF_EVENT is not set: `serfdeploy handle` is run by a serf agent as its -event-handler")

// Handle answers one serf event or query. Serf runs handlers one after
// another, so everything here returns within a second; long work goes to a
// detached worker. For queries, what is written to stdout is the answer.
func (n *Node) Handle(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	event := n.getenv("SERF_EVENT")
	switch event {
	case "":
		return ErrNotSerf
	case "user":
		name := n.getenv("SERF_USER_EVENT")
		if name == protocol.EventDeploy {
			return n.handleDeploy(stdin)
		}
		return n.runCustom(ctx, "user-"+name, stdin, stdout)
	case "query":
		name := n.getenv("SERF_QUERY_NAME")
		switch name {
		case protocol.QueryPuppetRun:
			return n.handlePuppetRun(stdin, stdout)
		case protocol.QueryPuppetStatus:
			n.flushSpoolLater()
			return n.handleStatus(stdin, stdout)
		case protocol.QueryPuppetDisable, protocol.QueryPuppetEnable:
			return n.handleLock(stdin, stdout, name == protocol.QueryPuppetDisable)
		}
		return n.runCustom(ctx, "query-"+name, stdin, stdout)
	default:
		// member-join, member-leave, member-failed, member-update, member-reap
		n.flushSpoolLater()
		return n.runCustom(ctx, event, stdin, stdout)
	}
}

var customName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// runCustom runs an operator's executable from the handlers directory, like
// the classic serf handler router: `user-NAME`, `query-NAME`, `member-join`.
// A missing one is not an error: most events need no handler.
func (n *Node) runCustom(ctx context.Context, name string, stdin io.Reader, stdout io.Writer) error {
	if !customName.MatchString(name) {
		n.log.Printf("ignoring event with unsafe name %q", name)
		return nil
	}
	path := filepath.Join(n.cfg.HandlersDir, name)
	info, err := os.Stat(path)
	if err != nil || !info.Mode().IsRegular() || info.Mode()&0o111 == 0 {
		return nil
	}
	cmd := exec.CommandContext(ctx, path)
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	cmd.Stderr = stdout // serf answers a query with both
	if err := cmd.Run(); err != nil {
		n.log.Printf("custom handler %s: %v", path, err)
		return fmt.Errorf("custom handler %s: %w", path, err)
	}
	return nil
}
