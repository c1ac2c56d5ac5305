package serfsim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// writeTimeout bounds one write to a client, so that a client that stopped
// reading cannot hang the simulator (serf itself has no such bound).
const writeTimeout = 10 * time.Second

// Server is the simulated agent's RPC listener, serving one Fleet.
type Server struct {
	fleet   *Fleet
	authKey string
	ln      net.Listener
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu    sync.Mutex
	conns map[*conn]bool
}

// Listen starts serving fleet on addr (e.g. 127.0.0.1:0). With an authKey
// the clients must authenticate, as with serf's -rpc-auth.
func Listen(addr string, fleet *Fleet, authKey string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{fleet: fleet, authKey: authKey, ln: ln, ctx: ctx, cancel: cancel, conns: map[*conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the address clients dial.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops listening, drops every client and waits for their goroutines.
func (s *Server) Close() error {
	s.cancel()
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			continue
		}
		c := newConn(s, nc)
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// conn is one RPC client, as serf's IPCClient.
type conn struct {
	srv *Server
	nc  net.Conn
	dec *codec.Decoder
	w   *bufio.Writer
	enc *codec.Encoder
	wmu sync.Mutex // one record (header and body) at a time

	// Touched by the read loop only.
	version int32
	authed  bool
	streams map[uint64]context.CancelFunc
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{srv: s, nc: nc, w: bufio.NewWriter(nc), streams: map[uint64]context.CancelFunc{}}
	c.dec = codec.NewDecoder(bufio.NewReader(nc), rpcHandle())
	c.enc = codec.NewEncoder(c.w, rpcHandle())
	return c
}

// send writes a response header and, unless nil, its body.
func (c *conn) send(seq uint64, errText string, body any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := c.enc.Encode(&responseHeader{Seq: seq, Error: errText}); err != nil {
		return err
	}
	if body != nil {
		if err := c.enc.Encode(body); err != nil {
			return err
		}
	}
	return c.w.Flush()
}

func (c *conn) serve() {
	defer func() {
		for _, cancel := range c.streams {
			cancel()
		}
		c.nc.Close()
	}()
	for {
		var h requestHeader
		if err := c.dec.Decode(&h); err != nil {
			return
		}
		// An error ends the connection, as in serf's handleClient.
		if err := c.handle(&h); err != nil {
			return
		}
	}
}

// hasBody says whether a request carries a body after its header.
func hasBody(command string) bool {
	switch command {
	case cmdMembers, cmdStats, "leave", "list-keys":
		return false
	}
	return true
}

// handle mirrors AgentIPC.handleRequest for the commands serfdeploy uses.
func (c *conn) handle(h *requestHeader) error {
	if h.Command != cmdHandshake && c.version == 0 {
		c.send(h.Seq, errHandshakeRequired, nil)
		return errors.New(errHandshakeRequired)
	}
	if c.srv.authKey != "" && !c.authed && h.Command != cmdAuth && h.Command != cmdHandshake {
		// Serf leaves the request's body unread here, which garbles the
		// rest of the session; the body is skipped instead.
		if hasBody(h.Command) {
			var skip any
			if err := c.dec.Decode(&skip); err != nil {
				return err
			}
		}
		return c.send(h.Seq, errAuthRequired, nil)
	}
	switch h.Command {
	case cmdHandshake:
		var req handshakeRequest
		if err := c.dec.Decode(&req); err != nil {
			return err
		}
		errText := ""
		switch {
		case req.Version != 1:
			errText = errUnsupportedVersion
		case c.version != 0:
			errText = errDuplicateHandshake
		default:
			c.version = req.Version
		}
		return c.send(h.Seq, errText, nil)
	case cmdAuth:
		var req authRequest
		if err := c.dec.Decode(&req); err != nil {
			return err
		}
		if req.AuthKey != c.srv.authKey {
			return c.send(h.Seq, errInvalidAuthToken, nil)
		}
		c.authed = true
		return c.send(h.Seq, "", nil)
	case cmdEvent:
		var req eventRequest
		if err := c.dec.Decode(&req); err != nil {
			return err
		}
		return c.send(h.Seq, errText(c.srv.fleet.FireEvent(req.Name, req.Payload, req.Coalesce)), nil)
	case cmdMembers, cmdMembersFiltered:
		return c.members(h)
	case cmdQuery:
		return c.query(h)
	case cmdStream:
		return c.stream(h)
	case cmdStats:
		return c.send(h.Seq, "", c.srv.fleet.agentStats())
	case cmdStop:
		var req stopRequest
		if err := c.dec.Decode(&req); err != nil {
			return err
		}
		if cancel, ok := c.streams[req.Stop]; ok {
			cancel()
			delete(c.streams, req.Stop)
		}
		return c.send(h.Seq, "", nil) // serf always succeeds
	}
	c.srv.fleet.count(func(st *Stats) { st.Unsupported = append(st.Unsupported, h.Command) })
	c.send(h.Seq, errUnsupportedCommand, nil)
	return fmt.Errorf("command %q not recognized", h.Command)
}

// members mirrors AgentIPC.handleMembers; a filter regexp that does not
// compile ends the connection without an answer, as in serf.
func (c *conn) members(h *requestHeader) error {
	mf := &memberFilter{}
	if h.Command == cmdMembersFiltered {
		var req membersFilteredRequest
		if err := c.dec.Decode(&req); err != nil {
			return err
		}
		var err error
		if mf, err = newMemberFilter(req.Tags, req.Status, req.Name); err != nil {
			return err
		}
	}
	out := make([]rpcMember, 0, len(c.srv.fleet.nodes))
	for _, n := range c.srv.fleet.nodes {
		if mf.match(n) {
			out = append(out, n.member())
		}
	}
	return c.send(h.Seq, "", &membersResponse{Members: out})
}

// query mirrors AgentIPC.handleQuery: the answer to the request, then the
// query's records under the same sequence number.
func (c *conn) query(h *requestHeader) error {
	var req queryRequest
	if err := c.dec.Decode(&req); err != nil {
		return err
	}
	q, err := c.srv.fleet.startQuery(&req)
	if err := c.send(h.Seq, errText(err), nil); err != nil {
		return err
	}
	if err == nil {
		go c.srv.fleet.run(q, func(rec queryRecord) error { return c.send(h.Seq, "", &rec) })
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (n *node) member() rpcMember {
	// Protocol versions as a serf 0.11 agent reports them (memberlist 1-5
	// using 2, serf 2-5 using 4).
	return rpcMember{
		Name: n.name, Addr: n.addr, Port: memberPort, Tags: n.tags, Status: n.status(),
		ProtocolMin: 1, ProtocolMax: 5, ProtocolCur: 2,
		DelegateMin: 2, DelegateMax: 5, DelegateCur: 4,
	}
}
