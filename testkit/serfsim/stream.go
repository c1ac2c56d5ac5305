package serfsim

import (
	"context"
	"strings"
)

// streamBuffer is serf's eventStream buffer; events beyond it are dropped,
// as serf drops them.
const streamBuffer = 512

// eventFilter is one element of a stream's type, as serf's
// ParseEventFilter reads it: "*", "user", "user:NAME", "query:NAME", or a
// member event.
type eventFilter struct {
	event string
	name  string
}

func parseEventFilter(v string) []eventFilter {
	if v == "" {
		v = "*"
	}
	var out []eventFilter
	for _, e := range strings.Split(v, ",") {
		var f eventFilter
		switch {
		case strings.HasPrefix(e, "user:"):
			f = eventFilter{"user", e[len("user:"):]}
		case strings.HasPrefix(e, "query:"):
			f = eventFilter{"query", e[len("query:"):]}
		default:
			f = eventFilter{event: e}
		}
		out = append(out, f)
	}
	return out
}

func (f eventFilter) valid() bool {
	switch f.event {
	case "member-join", "member-leave", "member-failed", "member-update", "member-reap", "user", "query", "*":
		return true
	}
	return false
}

// matchUser: only user events exist in the simulation (no member changes,
// and queries are not streamed to RPC clients).
func (f eventFilter) matchUser(name string) bool {
	return f.event == "*" || (f.event == "user" && (f.name == "" || f.name == name))
}

// stream mirrors AgentIPC.handleStream: validate the filter, answer, then
// send every matching user event the local agent receives.
func (c *conn) stream(h *requestHeader) error {
	var req streamRequest
	if err := c.dec.Decode(&req); err != nil {
		return err
	}
	filters := parseEventFilter(req.Type)
	for _, f := range filters {
		if !f.valid() {
			return c.send(h.Seq, errInvalidFilter, nil)
		}
	}
	if _, ok := c.streams[h.Seq]; ok {
		return c.send(h.Seq, errStreamExists, nil)
	}
	if err := c.send(h.Seq, "", nil); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(c.srv.ctx)
	events := make(chan UserEvent, streamBuffer)
	unsubscribe := c.srv.fleet.Subscribe(func(ev UserEvent) {
		for _, f := range filters {
			if f.matchUser(ev.Name) {
				select {
				case events <- ev:
				default: // serf: "Dropping event"
				}
				return
			}
		}
	})
	c.streams[h.Seq] = func() { unsubscribe(); cancel() }
	go func() {
		for {
			select {
			case ev := <-events:
				rec := userEventRecord{Event: "user", LTime: ev.LTime, Name: ev.Name, Payload: ev.Payload, Coalesce: ev.Coalesce}
				if c.send(h.Seq, "", &rec) != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}
