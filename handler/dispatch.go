package handler

import (
	"errors"
	"io"
	"strings"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// ErrNotSerf means the handler was started outside serf.
var ErrNotSerf = errors.New("SERF_EVENT is not set: `serfdeploy handle` is run by a serf agent as its -event-handler")

// Serves reports whether the serf event described by getenv (serf's
// SERF_EVENT, SERF_USER_EVENT, SERF_QUERY_NAME) is one serfdeploy answers,
// that is one protocol.HandlerFilter lets through. It reads nothing else,
// so that `serfdeploy handle` can exit at once for any other event: an agent
// registered without the filter still forks the handler for every member
// event, and an operator's own user events and queries are not ours.
func Serves(getenv func(string) string) bool {
	var kind string
	switch getenv("SERF_EVENT") {
	case "user":
		kind = "user:" + getenv("SERF_USER_EVENT")
	case "query":
		kind = "query:" + getenv("SERF_QUERY_NAME")
	default:
		return false
	}
	for _, f := range strings.Split(protocol.HandlerFilter(), ",") {
		if f == kind {
			return true
		}
	}
	return false
}

// Handle answers one serf event or query. Serf runs handlers one after
// another, so everything here returns within a second; long work goes to a
// detached worker. For queries, what is written to stdout is the answer.
// Events serfdeploy does not serve are ignored: an operator's own handlers
// are a second -event-handler (scripts/handler-router.sh).
func (n *Node) Handle(stdin io.Reader, stdout io.Writer) error {
	event := n.getenv("SERF_EVENT")
	if event == "" {
		return ErrNotSerf
	}
	switch {
	case event == "user" && n.getenv("SERF_USER_EVENT") == protocol.EventDeploy:
		return n.handleDeploy(stdin)
	case event != "query":
		return nil
	}
	switch name := n.getenv("SERF_QUERY_NAME"); name {
	case protocol.QueryPuppetRun:
		return n.handlePuppetRun(stdin, stdout)
	case protocol.QueryPuppetStatus:
		n.flushSpoolLater()
		return n.handleStatus(stdin, stdout)
	case protocol.QueryPuppetDisable, protocol.QueryPuppetEnable:
		return n.handleLock(stdin, stdout, name == protocol.QueryPuppetDisable)
	}
	return nil
}
