package serfsim

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// Serf's default limits (serf/config.go DefaultConfig and the agent's
// cmd/serf/command/agent/config.go DefaultConfig, v0.11.0).
const (
	UserEventSizeLimit     = 512
	QuerySizeLimit         = 1024
	QueryResponseSizeLimit = 1024
)

// Gossip message types, in the order of serf/messages.go; the type is the
// first byte of every encoded message and counts towards the limits.
const (
	messageUserEventType     = 3
	messageQueryType         = 4
	messageQueryResponseType = 5
)

// Query filter types of serf/messages.go.
const (
	filterNodeType = 0
	filterTagType  = 1
)

const queryFlagAck = 1

// The gossip messages are protocol's copies of serf/messages.go
// (protocol.SerfUserEvent, SerfQuery, SerfFilterTag, SerfQueryResponse):
// protocol sizes them at their worst case, the simulator with the values
// it sends.

// encodeMessage mirrors serf/messages.go encodeMessage: a type byte, then the
// message in msgpack.
func encodeMessage(t byte, msg any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(t)
	h := &codec.MsgpackHandle{BasicHandle: codec.BasicHandle{TimeNotBuiltin: true}}
	err := codec.NewEncoder(&buf, h).Encode(msg)
	return buf.Bytes(), err
}

// encodeFilter mirrors serf/messages.go encodeFilter (a plain handle).
func encodeFilter(t byte, filt any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(t)
	err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(filt)
	return buf.Bytes(), err
}

// checkUserEvent mirrors (*serf.Serf).UserEvent in serf/serf.go: name plus
// payload are checked first, then the encoded message, each against the
// configured limit, with serf's error texts.
func checkUserEvent(ltime uint64, name string, payload []byte, coalesce bool) error {
	if len(name)+len(payload) > UserEventSizeLimit {
		return fmt.Errorf("user event exceeds configured limit of %d bytes before encoding", UserEventSizeLimit)
	}
	raw, err := encodeMessage(messageUserEventType, &protocol.SerfUserEvent{LTime: ltime, Name: name, Payload: payload, CC: coalesce})
	if err != nil {
		return err
	}
	if len(raw) > UserEventSizeLimit {
		return fmt.Errorf("encoded user event exceeds configured limit of %d bytes after encoding", UserEventSizeLimit)
	}
	return nil
}

// querySize mirrors (*serf.Serf).Query in serf/serf.go (with
// QueryParam.encodeFilters of serf/query.go): the size of the encoded query
// message that serf compares with QuerySizeLimit.
func querySize(q *protocol.SerfQuery, nodes []string, tags map[string]string, ack bool) (int, error) {
	var filters [][]byte
	if len(nodes) > 0 {
		b, err := encodeFilter(filterNodeType, nodes)
		if err != nil {
			return 0, err
		}
		filters = append(filters, b)
	}
	for tag, expr := range tags {
		b, err := encodeFilter(filterTagType, &protocol.SerfFilterTag{Tag: tag, Expr: expr})
		if err != nil {
			return 0, err
		}
		filters = append(filters, b)
	}
	q.Filters = filters
	if ack {
		q.Flags |= queryFlagAck
	}
	raw, err := encodeMessage(messageQueryType, q)
	return len(raw), err
}

// responseSize mirrors (*serf.Query).Respond (serf/event.go in v0.11.0, with
// createResponse and checkResponseSize): the encoded response message is what
// serf compares with QueryResponseSizeLimit. A larger answer is not sent;
// the agent only logs a warning.
func responseSize(ltime uint64, id uint32, from string, payload []byte) int {
	raw, err := encodeMessage(messageQueryResponseType, &protocol.SerfQueryResponse{LTime: ltime, ID: id, From: from, Payload: payload})
	if err != nil {
		return QueryResponseSizeLimit + 1
	}
	return len(raw)
}
