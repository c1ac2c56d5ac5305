package handler

import (
	"context"
	"encoding/json"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// notify tells the CLI's agent (to) that this node's part of deploy id has
// changed, so that the CLI asks this node at once rather than at its next
// poll: the end of a run is seen within a gossip round. Best effort: the
// CLI polls anyway, and a CLI that has gone answers nothing.
func (n *Node) notify(ctx context.Context, to, id string) {
	if to == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c, err := serfrpc.Connect(ctx, serfrpc.Config{Addr: n.cfg.Serf.RPCAddr, AuthKey: n.cfg.Serf.RPCAuth})
	if err != nil {
		n.log.Printf("notify %s of %s: %v", to, id, err)
		return
	}
	defer c.Close()
	payload, _ := json.Marshal(protocol.Notice{ID: id, Node: n.name})
	_, err = c.Query(ctx, serfrpc.Query{
		Name: protocol.QueryNotify, Payload: payload, Filter: serfrpc.Filter{Nodes: []string{to}},
		Timeout: 2 * time.Second, Expect: []string{to}, Resend: 500 * time.Millisecond,
	})
	if err != nil {
		n.log.Printf("notify %s of %s: %v", to, id, err)
	}
}
