package serfcluster

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recordHandler appends every event an agent hands its handler (with the
// payload, or the member lines of a member event) to {dir}/events, and
// answers queries with "ok".
const recordHandler = `echo "$SERF_EVENT $SERF_USER_EVENT$SERF_QUERY_NAME $(cat)" >> {dir}/events; echo ok`

func serfCmd(args ...string) (string, error) {
	out, err := exec.Command("serf", args...).CombinedOutput()
	return string(out), err
}

func events(n *Node) string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, "events"))
	return string(b)
}

// waitEvents waits until n's handler has recorded want.
func waitEvents(t *testing.T, n *Node, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(events(n), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s's handler did not get %q within %s; it got:\n%s", n.Name, want, timeout, events(n))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// queryResponders fires a query through node's agent and returns who answered.
func queryResponders(t *testing.T, rpcAddr, name, payload string) map[string]string {
	t.Helper()
	out, err := exec.Command("serf", "query", "-rpc-addr", rpcAddr, "-format", "json", "-timeout", "2s", name, payload).Output()
	if err != nil {
		t.Fatalf("serf query %s: %v: %s", name, err, out)
	}
	var q struct {
		Responses map[string]string `json:"Responses"`
	}
	if err := json.Unmarshal(out, &q); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return q.Responses
}

// TestEncryptKeepsOutNodesWithoutTheKey: two agents share a gossip key; an
// agent without a key and one with another key try to join through one of
// them. Neither becomes a member on either side, and a deploy event and a
// puppetrun query fired from the intruder reach no keyed node's handler,
// while the same event and query fired from a keyed node reach both.
func TestEncryptKeepsOutNodesWithoutTheKey(t *testing.T) {
	key := NewKey(t)
	c := Start(t, Options{Handler: recordHandler},
		NodeSpec{Name: "keyed-1", EncryptKey: key},
		NodeSpec{Name: "keyed-2", EncryptKey: key})
	k1, k2 := c.Node("keyed-1"), c.Node("keyed-2")

	for _, in := range []struct{ name, key string }{
		{"intruder-nokey", ""},
		{"intruder-otherkey", NewKey(t)},
	} {
		t.Run(in.name, func(t *testing.T) {
			ic := Start(t, Options{Handler: recordHandler}, NodeSpec{Name: in.name, EncryptKey: in.key})
			intruder := ic.Nodes()[0]
			start := time.Now()
			out, err := serfCmd("join", "-rpc-addr", intruder.RPCAddr, k1.BindAddr)
			took := time.Since(start)
			t.Logf("join through %s: %v after %s: %s", k1.Name, err, took.Round(time.Millisecond), strings.TrimSpace(out))
			if err == nil {
				t.Errorf("serf join from %s succeeded: %s", in.name, out)
			}

			_, err = serfCmd("event", "-rpc-addr", intruder.RPCAddr, "deploy", "from-"+in.name)
			if err != nil {
				t.Fatal(err)
			}
			resp := queryResponders(t, intruder.RPCAddr, "puppetrun", "from-"+in.name)
			if _, ok := resp[in.name]; len(resp) != 1 || !ok {
				t.Errorf("puppetrun query from %s answered by %v, want only itself", in.name, resp)
			}
			// The intruder's own handler got its event: it was fired.
			waitEvents(t, intruder, "user deploy from-"+in.name, 5*time.Second)

			// For 5 s after the attempt, no side lists the other.
			for time.Since(start) < 5*time.Second {
				for _, n := range []*Node{k1, k2} {
					for _, m := range c.Members(t, n) {
						if m.Name == in.name {
							t.Fatalf("%s lists %s %s", n.Name, in.name, m.Status)
						}
					}
				}
				for _, m := range ic.Members(t, intruder) {
					if m.Name != in.name {
						t.Fatalf("%s lists %s %s", in.name, m.Name, m.Status)
					}
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}

	// Positive control: the same event and query from a keyed node reach
	// both keyed nodes.
	if _, err := serfCmd("event", "-rpc-addr", k1.RPCAddr, "deploy", "from-keyed-1"); err != nil {
		t.Fatal(err)
	}
	resp := queryResponders(t, k1.RPCAddr, "puppetrun", "from-keyed-1")
	if resp["keyed-1"] == "" || resp["keyed-2"] == "" {
		t.Fatalf("puppetrun query from keyed-1 answered by %v, want keyed-1 and keyed-2", resp)
	}
	for _, n := range []*Node{k1, k2} {
		waitEvents(t, n, "user deploy from-keyed-1", 10*time.Second)
		waitEvents(t, n, "query puppetrun from-keyed-1", 10*time.Second)
		if got := events(n); strings.Contains(got, "intruder") {
			t.Fatalf("%s's handler got something from an intruder:\n%s", n.Name, got)
		}
	}
	// What a keyed node logs about the attempts (for docs/security.md).
	log, _ := os.ReadFile(k1.LogPath)
	for _, l := range strings.Split(string(log), "\n") {
		if strings.Contains(l, "[ERR]") || strings.Contains(l, "[WARN]") {
			t.Logf("keyed-1: %s", strings.TrimSpace(l))
		}
	}
}
