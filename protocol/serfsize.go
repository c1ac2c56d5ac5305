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

type sizedUserEvent struct {
	LTime   uint64
	Name    string
	Payload []byte
	CC      bool
}

type sizedQuery struct {
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

type sizedFilterTag struct {
	Tag  string
	Expr string
}

type sizedResponse struct {
	LTime   uint64
	ID      uint32
	From    string
	Flags   uint32
	Payload []byte
}

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
	return encodedSize(&sizedUserEvent{LTime: math.MaxUint64, Name: name, Payload: payload, CC: true})
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
		filters = append(filters, encodedFilter(1, &sizedFilterTag{Tag: k, Expr: v}))
	}
	return encodedSize(&sizedQuery{
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
	return encodedSize(&sizedResponse{LTime: math.MaxUint64, ID: math.MaxUint32, From: from, Flags: math.MaxUint32, Payload: payload})
}

// ResponseFits reports whether serf sends the response, with a margin.
func ResponseFits(from string, payload []byte) bool {
	return ResponseSize(from, payload) <= MaxQueryResponse-sizeMargin
}
