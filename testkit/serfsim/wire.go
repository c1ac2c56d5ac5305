package serfsim

import (
	"net"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// The RPC wire types below have the field names and types of serf v0.11.0's
// cmd/serf/command/agent/ipc.go: msgpack encodes a struct as a map keyed by
// field name, so these are what github.com/hashicorp/serf/client decodes.

// IPC commands the simulator answers; any other is refused as serf refuses
// an unknown one.
const (
	cmdHandshake       = "handshake"
	cmdAuth            = "auth"
	cmdEvent           = "event"
	cmdMembers         = "members"
	cmdMembersFiltered = "members-filtered"
	cmdQuery           = "query"
	cmdStream          = "stream"
	cmdStop            = "stop"
	cmdStats           = "stats"
)

// Errors, with serf's exact texts: the client and serfdeploy match on them.
const (
	errUnsupportedCommand = "Unsupported command"
	errUnsupportedVersion = "Unsupported IPC version"
	errDuplicateHandshake = "Handshake already performed"
	errHandshakeRequired  = "Handshake required"
	errInvalidFilter      = "Invalid event filter"
	errStreamExists       = "Stream with given sequence exists"
	errAuthRequired       = "Authentication required"
	errInvalidAuthToken   = "Invalid authentication token"
)

// Types of the records streamed back for a query.
const (
	recordAck      = "ack"
	recordResponse = "response"
	recordDone     = "done"
)

type requestHeader struct {
	Command string
	Seq     uint64
}

type responseHeader struct {
	Seq   uint64
	Error string
}

type handshakeRequest struct {
	Version int32
}

type authRequest struct {
	AuthKey string
}

type eventRequest struct {
	Name     string
	Payload  []byte
	Coalesce bool
}

type membersFilteredRequest struct {
	Tags   map[string]string
	Status string
	Name   string
}

type membersResponse struct {
	Members []rpcMember
}

type streamRequest struct {
	Type string
}

type stopRequest struct {
	Stop uint64
}

type queryRequest struct {
	FilterNodes []string
	FilterTags  map[string]string
	RequestAck  bool
	RelayFactor uint8
	Timeout     time.Duration
	Name        string
	Payload     []byte
}

type queryRecord struct {
	Type    string
	From    string
	Payload []byte
}

type userEventRecord struct {
	Event    string
	LTime    uint64
	Name     string
	Payload  []byte
	Coalesce bool
}

type rpcMember struct {
	Name        string
	Addr        net.IP
	Port        uint16
	Tags        map[string]string
	Status      string
	ProtocolMin uint8
	ProtocolMax uint8
	ProtocolCur uint8
	DelegateMin uint8
	DelegateMax uint8
	DelegateCur uint8
}

// rpcHandle is the msgpack handle of serf's IPC (AgentIPC.newMsgpackHandle
// with msgpackUseNewTimeFormat false, the agent's default).
func rpcHandle() *codec.MsgpackHandle {
	return &codec.MsgpackHandle{
		WriteExt:    true,
		BasicHandle: codec.BasicHandle{TimeNotBuiltin: true},
	}
}
