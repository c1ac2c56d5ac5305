package serfrpc

import (
	"context"
	"net"
	"strconv"
)

// FireEvent sends a user event to the whole cluster. With coalesce false every
// event is delivered, which deploys need: two deploys of different refs in
// quick succession must not be folded into one.
func (c *Client) FireEvent(ctx context.Context, name string, payload []byte, coalesce bool) error {
	return c.call(ctx, func() error { return c.rpc.UserEvent(name, payload, coalesce) })
}

func joinHostPort(host string, port uint16) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}
