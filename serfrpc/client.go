// Package serfrpc is the only code in serfdeploy that speaks serf's RPC
// protocol. It wraps github.com/hashicorp/serf/client with contexts, anchored
// filters, early-ending queries and errors a user can act on.
package serfrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/serf/client"
)

// DefaultAddr is serf's own default RPC address.
const DefaultAddr = "127.0.0.1:7373"

// Errors a caller can tell apart with errors.Is; the wrapped text carries the
// details.
var (
	ErrUnreachable = errors.New("serf agent not reachable")
	ErrAuth        = errors.New("serf agent refused the RPC auth key")
	ErrGone        = errors.New("serf agent went away during the call")
)

// Config says how to reach the local serf agent.
type Config struct {
	Addr    string // host:port of the agent's RPC listener
	AuthKey string // the agent's -rpc-auth key, if it has one
}

// Client is a connection to one serf agent. It is safe for concurrent use.
// A call whose context ends closes the connection, because the underlying
// client's reads have no deadline of their own.
type Client struct {
	rpc  *client.RPCClient
	addr string
	self string // the agent's node name: its length counts in a query's size
}

// Connect dials the agent, performs serf's handshake and, with a key, its
// authentication. The context bounds the whole exchange.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	type result struct {
		rpc *client.RPCClient
		err error
	}
	done := make(chan result, 1)
	timeout := 10 * time.Second
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
	}
	go func() {
		rpc, err := client.ClientFromConfig(&client.Config{Addr: addr, AuthKey: cfg.AuthKey, Timeout: timeout})
		done <- result{rpc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, classify(addr, r.err)
		}
		// Without the agent's name, size queries as if it were as long
		// as serfdeploy allows, so that they still fit.
		c := &Client{rpc: r.rpc, addr: addr, self: strings.Repeat("n", 253)}
		if stats, err := r.rpc.Stats(); err == nil && stats["agent"]["name"] != "" {
			c.self = stats["agent"]["name"]
		}
		return c, nil
	case <-ctx.Done():
		// The dial goroutine may still finish; close what it returns.
		go func() {
			if r := <-done; r.rpc != nil {
				r.rpc.Close()
			}
		}()
		return nil, fmt.Errorf("%w at %s: no answer to the handshake (%v)", ErrUnreachable, addr, ctx.Err())
	}
}

// Addr is the agent's RPC address.
func (c *Client) Addr() string { return c.addr }

// Close ends the connection.
func (c *Client) Close() error { return c.rpc.Close() }

// call runs fn, giving up (and closing the connection) when ctx ends.
func (c *Client) call(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			return classify(c.addr, err)
		}
		return nil
	case <-ctx.Done():
		c.rpc.Close()
		return ctx.Err()
	}
}

// classify turns the client's errors into ones that say what happened.
func classify(addr string, err error) error {
	msg := err.Error()
	var opErr *net.OpError
	switch {
	case strings.Contains(msg, "Invalid authentication token"):
		return fmt.Errorf("%w at %s: the key given with --rpc-auth or SERF_RPC_AUTH is wrong", ErrAuth, addr)
	case strings.Contains(msg, "Authentication required"):
		return fmt.Errorf("%w at %s: the agent requires an RPC auth key; pass --rpc-auth or set SERF_RPC_AUTH", ErrAuth, addr)
	case errors.Is(err, syscall.ECONNREFUSED), errors.As(err, &opErr) && opErr.Op == "dial":
		return fmt.Errorf("%w at %s: %v; is `serf agent` running there? set --rpc-addr or SERF_RPC_ADDR", ErrUnreachable, addr, err)
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed),
		msg == "client closed", msg == "Stream closed":
		return fmt.Errorf("%w at %s", ErrGone, addr)
	}
	return fmt.Errorf("serf agent at %s: %w", addr, err)
}
