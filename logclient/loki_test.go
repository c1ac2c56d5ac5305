package logclient

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/loki"
)

// eventually retries read until it succeeds or 30s pass: Loki makes a
// pushed line queryable about a second later.
// eventuallyCount waits until count returns want.
func eventuallyCount(t *testing.T, what string, want int, count func() (int, error)) {
	t.Helper()
	eventually(t, what, func() error {
		got, err := count()
		if err == nil && got != want {
			err = fmt.Errorf("%d, want %d", got, want)
		}
		return err
	})
}

func eventually(t *testing.T, what string, read func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	start := time.Now()
	for {
		err := read()
		if err == nil {
			t.Logf("%s after %s", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestRealLoki(t *testing.T) {
	lk := loki.Start(t)
	c := testClient(t, lk.URL, Config{})
	ctx := context.Background()
	now := time.Now()
	var recs []protocol.RunRecord
	for i := 1; i <= 3; i++ {
		node := fmt.Sprintf("agent-%02d", i)
		recs = append(recs,
			protocol.RunRecord{Event: "started", DeployID: "deploy-1", Node: node, Environment: "production", Phase: "running", Time: now},
			protocol.RunRecord{Event: "finished", DeployID: "deploy-1", Node: node, Environment: "production", Phase: "failed", Outcome: protocol.Outcome{ExitCode: exit(6), Failed: 1, FailedResources: []protocol.FailedResource{{Resource: "Exec[boom]", Message: "'/bin/false' returned 1"}}}, Time: now.Add(time.Second)})
	}
	recs = append(recs, protocol.RunRecord{Event: "finished", DeployID: "deploy-2", Node: "agent-01", Environment: "production", Time: now})
	if err := c.Push(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	eventually(t, "3 finished records queryable", func() error {
		got, err := c.Latest(ctx, "deploy-1", now.Add(-time.Minute), now.Add(time.Minute))
		if err != nil {
			return err
		}
		if len(got) != 3 {
			return fmt.Errorf("%d nodes", len(got))
		}
		for _, r := range got {
			if r.Event != "finished" || r.ExitCode == nil || *r.ExitCode != 6 || r.FailedResources[0].Resource != "Exec[boom]" {
				return fmt.Errorf("record %+v", r)
			}
		}
		return nil
	})

	// Loki down: records wait in the spool, then all arrive.
	spool := Spool{Dir: t.TempDir()}
	lk.Stop()
	for i := 1; i <= 3; i++ {
		spool.Add(protocol.RunRecord{Event: "finished", DeployID: "deploy-3", Node: fmt.Sprintf("agent-%02d", i), Environment: "production", Time: time.Now()})
	}
	down := testClient(t, lk.URL, Config{Retries: 1})
	if _, err := spool.Flush(ctx, down); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("flush to a stopped Loki: %v", err)
	}
	lk.Restart(t)
	if n, err := spool.Flush(ctx, c); n != 3 || err != nil {
		t.Fatalf("flush after restart: %d %v", n, err)
	}
	eventuallyCount(t, "spooled records of 3 nodes queryable after restart", 3, func() (int, error) {
		got, err := c.Latest(ctx, "deploy-3", now.Add(-time.Minute), time.Now().Add(time.Minute))
		return len(got), err
	})
}
