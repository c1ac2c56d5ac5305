package serfrpc

import (
	"context"

	"github.com/hashicorp/serf/client"
)

// Self is the name of the agent this client talks to: nodes address
// queries meant for the CLI to it.
func (c *Client) Self() string { return c.self }

// Listen streams the queries named name that reach this client's agent,
// answering each at once (so that the sender stops resending), until ctx
// ends. Each is returned with its payload; a query carries no sender, so
// the payload must say who sent it.
func (c *Client) Listen(ctx context.Context, name string) (<-chan Response, error) {
	raw := make(chan map[string]any, 256)
	var handle client.StreamHandle
	err := c.call(ctx, func() error {
		var err error
		handle, err = c.rpc.Stream("query:"+name, raw)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make(chan Response, 256)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				_ = c.rpc.Stop(handle)
				return
			case rec, ok := <-raw:
				if !ok {
					return
				}
				payload, _ := rec["Payload"].([]byte)
				if id, ok := queryID(rec["ID"]); ok {
					_ = c.rpc.Respond(id, []byte("ok"))
				}
				select {
				case out <- Response{Payload: payload}:
				default: // the watcher polls anyway; never block the stream
				}
			}
		}
	}()
	return out, nil
}

// queryID reads the id serf gives a streamed query, as msgpack decoded it.
func queryID(v any) (uint64, bool) {
	switch id := v.(type) {
	case uint64:
		return id, true
	case int64:
		return uint64(id), id >= 0
	}
	return 0, false
}
