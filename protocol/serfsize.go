package protocol

import (
	"bytes"
	"math"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Serf checks its limits against the msgpack-encoded message, not the raw
// payload: a deploy payload 30 bytes under 512 is still refused, and an
// answer of 1,000 bytes from a node with a long name is dropped. These
// functions size a message the way serf's UserEvent, Query and the query
// response path (serf/serf.go and serf/query.go, v0.8 to v0.11) encode it:
// one type byte, then the message struct as a msgpack map. Values serf picks
// at send time (Lamport clock, query id, address) are taken at their largest,
// so a message that fits here fits there.

// sizeMargin is kept free under serf's response and query limits for
// what may differ between serf versions.
const sizeMargin = 16

// The gossip messages below copy serf/messages.go field for field (names,
// order and Go types), because their msgpack encoding is what serf
// measures. They are exported for testkit/serfsim, which encodes the same
// messages with the values serf really sends, so the simulator and these
// sizes cannot drift apart (and the simulator's test against a real serf
// agent checks both).

// SerfUserEvent is serf's messageUserEvent.
type SerfUserEvent struct {
	LTime   uint64 // serf.LamportTime
	Name    string
	Payload []byte
	CC      bool
}

// SerfQuery is serf's messageQuery.
type SerfQuery struct {
	LTime       uint64
	ID          uint32
	Addr        []byte
	Port        uint16
	SourceNode  string
	Filters     [][]byte
	Flags       uint32
	RelayFactor uint8
	Timeout     time.Duration
	Name        string
	Payload     []byte
}

// SerfFilterTag is serf's filterTag, a query's tag filter.
type SerfFilterTag struct {
	Tag  string
	Expr string
}

// SerfQueryResponse is serf's messageQueryResponse.
type SerfQueryResponse struct {
	LTime   uint64
	ID      uint32
	From    string
	Flags   uint32
	Payload []byte
}

// MaxTagsSize is serf's limit on a member's tags as it encodes them
// (memberlist's node metadata; serf.go, encodeTags): over it the agent
// refuses to start.
const MaxTagsSize = 512

// TagsSize is the size serf gives a member's tags: its one magic byte,
// then the map as msgpack.
func TagsSize(tags map[string]string) int { return encodedSize(tags) }

func encodedSize(v any) int {
	var buf bytes.Buffer
	buf.WriteByte(0) // serf's message type
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(v); err != nil {
		// Plain structs of strings, numbers and byte slices always encode.
		panic("protocol: sizing a serf message: " + err.Error())
	}
	return buf.Len()
}

// EventSize is the size serf gives a user event when it checks it against
// its 512-byte limit.
func EventSize(name string, payload []byte) int {
	return encodedSize(&SerfUserEvent{LTime: math.MaxUint64, Name: name, Payload: payload, CC: true})
}

// EventFits reports whether serf accepts a user event of this name and
// payload.
func EventFits(name string, payload []byte) bool {
	return len(name)+len(payload) <= MaxEventPayload && EventSize(name, payload) <= MaxEventPayload
}

// QuerySize is the size serf gives a query when it checks it against its
// 1024-byte limit. source is the sending agent's node name (its length
// counts); nodes and tags are the filters as sent (tags already anchored).
func QuerySize(name string, payload []byte, nodes []string, tags map[string]string, timeout time.Duration, source string) int {
	var filters [][]byte
	if len(nodes) > 0 {
		filters = append(filters, encodedFilter(0, nodes))
	}
	for k, v := range tags {
		filters = append(filters, encodedFilter(1, &SerfFilterTag{Tag: k, Expr: v}))
	}
	return encodedSize(&SerfQuery{
		LTime: math.MaxUint64, ID: math.MaxUint32, Addr: make([]byte, 16), Port: math.MaxUint16,
		SourceNode: source, Filters: filters, Flags: math.MaxUint32, RelayFactor: math.MaxUint8,
		Timeout: timeout, Name: name, Payload: payload,
	})
}

// QueryFits reports whether serf accepts the query, with a margin.
func QueryFits(name string, payload []byte, nodes []string, tags map[string]string, timeout time.Duration, source string) bool {
	return QuerySize(name, payload, nodes, tags, timeout, source) <= MaxQuerySize-sizeMargin
}

func encodedFilter(kind byte, v any) []byte {
	var buf bytes.Buffer
	buf.WriteByte(kind)
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(v); err != nil {
		panic("protocol: sizing a serf filter: " + err.Error())
	}
	return buf.Bytes()
}

// ResponseSize is the size serf gives a node's query response from node
// from when it checks it against its 1024-byte limit.
func ResponseSize(from string, payload []byte) int {
	return encodedSize(&SerfQueryResponse{LTime: math.MaxUint64, ID: math.MaxUint32, From: from, Flags: math.MaxUint32, Payload: payload})
}

// ResponseFits reports whether serf sends the response, with a margin.
func ResponseFits(from string, payload []byte) bool {
	return ResponseSize(from, payload) <= MaxQueryResponse-sizeMargin
}
