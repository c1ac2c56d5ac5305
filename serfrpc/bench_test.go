package serfrpc

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/testkit/serfcluster"
)

// BenchmarkStatusPoll measures one status poll of five real agents, side by
// side: ending when every expected node has answered (what serfdeploy does)
// against waiting out the query timeout (what `serf query` does).
//
//	go test -run '^$' -bench StatusPoll -benchtime 10x ./serfrpc
func BenchmarkStatusPoll(b *testing.B) {
	var specs []serfcluster.NodeSpec
	var names []string
	for i := 1; i <= 5; i++ {
		n := fmt.Sprintf("agent-%02d", i)
		names = append(names, n)
		specs = append(specs, serfcluster.NodeSpec{Name: n})
	}
	cl := serfcluster.Start(b, serfcluster.Options{Handler: "echo ok"}, specs...)
	c, err := Connect(context.Background(), Config{Addr: cl.Nodes()[0].RPCAddr})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const timeout = 2 * time.Second
	for _, mode := range []struct {
		name   string
		expect []string
	}{{"until-all-answered", names}, {"wait-out-timeout", nil}} {
		b.Run(mode.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				res, err := c.Query(context.Background(), Query{Name: "status", Timeout: timeout, Expect: mode.expect, Resend: 500 * time.Millisecond})
				if err != nil || len(res.Responses) == 0 {
					b.Fatalf("%v %+v", err, res)
				}
			}
		})
	}
}
