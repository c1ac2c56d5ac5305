package testcluster

import (
	"crypto/rand"
	"encoding/base64"
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

func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

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
	key := newKey(t)
	c := Start(t, Options{Handler: recordHandler},
		NodeSpec{Name: "keyed-1", EncryptKey: key},
		NodeSpec{Name: "keyed-2", EncryptKey: key})
	k1, k2 := c.Node("keyed-1"), c.Node("keyed-2")

	for _, in := range []struct{ name, key string }{
		{"intruder-nokey", ""},
		{"intruder-otherkey", newKey(t)},
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

// installTree copies scripts/install.sh and the systemd unit into a temp
// checkout with a stand-in bin/serfdeploy, so the script builds nothing in
// the real checkout.
func installTree(t *testing.T) string {
	t.Helper()
	tree := t.TempDir()
	for _, f := range []string{"scripts/install.sh", "scripts/systemd/serf.service"} {
		b, err := os.ReadFile(filepath.Join("..", "..", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tree, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(tree, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "bin", "serfdeploy"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return tree
}

type installResult struct {
	code           int
	stdout, stderr string
}

func runInstall(t *testing.T, tree, root string, args ...string) installResult {
	t.Helper()
	cmd := exec.Command("sh", append([]string{filepath.Join(tree, "scripts", "install.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "SERFDEPLOY_INSTALL_ROOT="+root)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := installResult{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

func readKeyring(t *testing.T, path string) []string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	var keys []string
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatalf("%s: %v: %s", path, err, b)
	}
	return keys
}

// TestInstallWritesKeyringThatSerfUses: install.sh --encrypt-key writes a
// 0600 keyring holding the key and a 0600 serf.json naming it; a real serf
// agent started on that config directory encrypts with the key, rotates it
// with serf keys (the file follows) and restores the rotated keyring on a
// restart. The script prints neither key; without a key it warns.
func TestInstallWritesKeyringThatSerfUses(t *testing.T) {
	tree := installTree(t)
	root := filepath.Join(t.TempDir(), "root")
	key, rpcKey := newKey(t), "rpc-"+newKey(t)[:12]
	r := runInstall(t, tree, root, "--role", "agent", "--rpc-auth", rpcKey, "--encrypt-key", key, "--tag", "segment=qa")
	if r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Fatalf("install: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	confDir := filepath.Join(root, "etc", "serf")
	keyring := filepath.Join(confDir, "serf.keyring")
	if got := readKeyring(t, keyring); len(got) != 1 || got[0] != key {
		t.Fatalf("keyring %v, want [the key]", got)
	}
	for _, f := range []string{filepath.Join(confDir, "serf.json"), filepath.Join(root, "etc", "serfdeploy", "node.yaml")} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600 (it holds the RPC key)", f, fi.Mode(), err)
		}
	}
	var conf struct {
		KeyringFile string `json:"keyring_file"`
		RPCAuth     string `json:"rpc_auth"`
	}
	b, _ := os.ReadFile(filepath.Join(confDir, "serf.json"))
	if err := json.Unmarshal(b, &conf); err != nil || conf.KeyringFile != keyring || conf.RPCAuth != rpcKey {
		t.Fatalf("serf.json %v: %s", err, b)
	}

	// Installing again with another key keeps the keyring and says so.
	other := newKey(t)
	r = runInstall(t, tree, root, "--role", "agent", "--encrypt-key", other)
	if r.code != 0 || !strings.Contains(r.stderr, "does not hold the given key") {
		t.Fatalf("second install: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := readKeyring(t, keyring); len(got) != 1 || got[0] != key {
		t.Fatalf("keyring after a second install %v", got)
	}
	if strings.Contains(r.stdout+r.stderr, other) {
		t.Fatal("install.sh printed the key")
	}
	// A bad key is refused without being echoed.
	r = runInstall(t, tree, filepath.Join(t.TempDir(), "bad"), "--encrypt-key", "bm90LWEta2V5")
	if r.code != 2 || !strings.Contains(r.stderr, "serf keygen") || strings.Contains(r.stderr, "bm90LWEta2V5") {
		t.Fatalf("bad key: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Without a key: a warning, no keyring, no keyring_file.
	plain := filepath.Join(t.TempDir(), "plain")
	r = runInstall(t, tree, plain, "--role", "agent")
	b, _ = os.ReadFile(filepath.Join(plain, "etc", "serf", "serf.json"))
	if r.code != 0 || !strings.Contains(r.stderr, "NOT encrypted") || strings.Contains(string(b), "keyring_file") {
		t.Fatalf("no key: exit %d\n%s%s\nserf.json: %s", r.code, r.stdout, r.stderr, b)
	}
	if _, err := os.Stat(filepath.Join(plain, "etc", "serf", "serf.keyring")); err == nil {
		t.Fatal("keyring written without --encrypt-key")
	}

	// A real agent on the generated config directory.
	c := Start(t, Options{RPCAuth: rpcKey}, NodeSpec{Name: "installed", ConfigDir: confDir})
	n := c.Nodes()[0]
	log, _ := os.ReadFile(n.LogPath)
	if !strings.Contains(string(log), "Encrypted: true") || !strings.Contains(string(log), "Restored keyring with 1 keys") {
		t.Fatalf("agent did not load the keyring:\n%s", log)
	}
	keys := func(args ...string) string {
		t.Helper()
		out, err := serfCmd(append([]string{"keys", "-rpc-addr", n.RPCAddr, "-rpc-auth", rpcKey}, args...)...)
		if err != nil {
			t.Fatalf("serf keys %s: %v: %s", args[0], err, out)
		}
		return out
	}
	if out := keys("-list"); !strings.Contains(out, key+"  [1/1]") {
		t.Fatalf("serf keys -list:\n%s", out)
	}
	if out, err := serfCmd("keys", "-list", "-rpc-addr", n.RPCAddr, "-rpc-auth", "wrong"); err == nil || !strings.Contains(out, "Invalid authentication token") {
		t.Fatalf("wrong RPC key: %v: %s", err, out)
	}

	// Rotation as docs/security.md gives it; the keyring file follows.
	newer := newKey(t)
	keys("-install", newer)
	keys("-use", newer)
	keys("-remove", key)
	if got := readKeyring(t, keyring); len(got) != 1 || got[0] != newer {
		t.Fatalf("keyring after rotation %v, want [the new key]", got)
	}
	if log, _ := os.ReadFile(n.LogPath); strings.Contains(string(log), key) || strings.Contains(string(log), newer) {
		t.Fatalf("the agent's log shows a gossip key:\n%s", log)
	}
	n.Stop()
	c = Start(t, Options{RPCAuth: rpcKey}, NodeSpec{Name: "installed", ConfigDir: confDir})
	n = c.Nodes()[0]
	if out := keys("-list"); !strings.Contains(out, newer+"  [1/1]") || strings.Contains(out, key) {
		t.Fatalf("serf keys -list after a restart:\n%s", out)
	}
}
