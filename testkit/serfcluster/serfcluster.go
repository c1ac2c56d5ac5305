// Package serfcluster starts real serf agents (Debian's `serf`) on
// 127.0.0.1 for integration tests: free ports, given tags and event
// handler, waits until every agent sees every other alive, and stops them
// all when the test ends, failed or not. It talks to the agents through the
// `serf` command line only, so that the code under test (serfrpc) is not
// also the code that checks it.
package serfcluster

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NodeSpec describes one agent.
type NodeSpec struct {
	Name string            // serf node name, unique in the cluster
	Tags map[string]string // serf tags
	Env  []string          // extra environment for this agent (and so its handlers), "K=V"
	// EncryptKey is serf's -encrypt gossip key (base64); empty: gossip in
	// clear. Per node, so a test can start one without or with another key.
	EncryptKey string
	// ConfigDir is a serf -config-dir, e.g. one written by scripts/install.sh.
	ConfigDir string
}

// Options apply to every agent of a cluster.
type Options struct {
	// Handler is the -event-handler command; {name} and {dir} are replaced
	// with the node's name and directory. Empty: no handler.
	Handler string
	// ExtraHandlers are more -event-handler values, after Handler, with the
	// same replacements: e.g. an operator's own handlers beside
	// serfdeploy's.
	ExtraHandlers []string
	RPCAuth       string        // the agents' RPC auth key, if any
	Env           []string      // extra environment for every agent
	Profile       string        // serf -profile; default "local" (failure detection in seconds)
	JoinTimeout   time.Duration // default 30s
	// NetNS, when set, runs every agent inside that network namespace
	// (`ip netns exec NetNS serf agent ...`; the caller creates it and
	// brings its lo up), so that a test can shape the agents' traffic with
	// the namespace's own firewall without touching the host's. The serf
	// CLI calls that reach the agents' RPC (members, leave) run there too:
	// 127.0.0.1 in the namespace is not the host's.
	NetNS string
}

// Cluster is a set of running agents.
type Cluster struct {
	opts  Options
	dir   string
	mu    sync.Mutex
	nodes []*Node
}

// Node is one running agent.
type Node struct {
	Name     string
	Tags     map[string]string
	RPCAddr  string
	BindAddr string
	Dir      string // the node's own directory, removed with the cluster
	LogPath  string // the agent's output, a restart's appended

	cluster *Cluster
	spec    NodeSpec
	mu      sync.Mutex
	agent   *Agent // replaced by Restart
}

// Start starts the agents, joins them and waits until all see each other
// alive. Everything is stopped when the test ends.
func Start(t testing.TB, opts Options, specs ...NodeSpec) *Cluster {
	t.Helper()
	if opts.Profile == "" {
		opts.Profile = "local"
	}
	if opts.JoinTimeout == 0 {
		opts.JoinTimeout = 30 * time.Second
	}
	dir, err := os.MkdirTemp("", "serfcluster-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{opts: opts, dir: dir}
	t.Cleanup(func() { c.stopAll(t) })
	for _, s := range specs {
		if _, err := c.startNode(s); err != nil {
			t.Fatalf("starting serf agent %s: %v%s", s.Name, err, c.logTails())
		}
	}
	c.waitJoined(t)
	return c
}

// Nodes returns the agents in start order.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

// Node returns the agent named name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Dir is the cluster's directory.
func (c *Cluster) Dir() string { return c.dir }

// AddNode starts one more agent and waits until every agent sees it.
func (c *Cluster) AddNode(t testing.TB, spec NodeSpec) *Node {
	t.Helper()
	n, err := c.startNode(spec)
	if err != nil {
		t.Fatalf("starting serf agent %s: %v%s", spec.Name, err, c.logTails())
	}
	c.waitJoined(t)
	return n
}

// StartNode starts one more agent, joining the first, and returns at once:
// unlike AddNode it does not wait for the cluster to see it, so that agents
// can join one by one while the cluster forms (a fleet under churn).
func (c *Cluster) StartNode(t testing.TB, spec NodeSpec) *Node {
	t.Helper()
	n, err := c.startNode(spec)
	if err != nil {
		t.Fatalf("starting serf agent %s: %v%s", spec.Name, err, c.logTails())
	}
	return n
}

// startNode starts an agent, retrying with new ports when another process
// took one between choosing and binding.
func (c *Cluster) startNode(s NodeSpec) (*Node, error) {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		n, err := c.tryStart(s, attempt)
		if err == nil {
			c.mu.Lock()
			c.nodes = append(c.nodes, n)
			c.mu.Unlock()
			return n, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func (c *Cluster) tryStart(s NodeSpec, attempt int) (*Node, error) {
	bindPort, err := FreePort(true)
	if err != nil {
		return nil, err
	}
	rpcPort, err := FreePort(false)
	if err != nil {
		return nil, err
	}
	if c.taken(bindPort, rpcPort) {
		return nil, fmt.Errorf("port %d or %d is already another agent's", bindPort, rpcPort)
	}
	nodeDir := filepath.Join(c.dir, s.Name)
	if err := os.MkdirAll(nodeDir, 0o755); err != nil {
		return nil, err
	}
	n := &Node{
		Name: s.Name, Tags: s.Tags, Dir: nodeDir, cluster: c, spec: s,
		BindAddr: fmt.Sprintf("127.0.0.1:%d", bindPort),
		RPCAddr:  fmt.Sprintf("127.0.0.1:%d", rpcPort),
		LogPath:  filepath.Join(nodeDir, fmt.Sprintf("serf-%d.log", attempt)),
	}
	join := ""
	if first := c.Nodes(); len(first) > 0 {
		join = first[0].BindAddr
	}
	if err := c.run(n, join, false); err != nil {
		return nil, err
	}
	return n, nil
}

// run starts n's agent at n's addresses, joining the agent at join ("":
// none), and waits until its RPC answers.
func (c *Cluster) run(n *Node, join string, replay bool) error {
	conf := AgentConfig{Name: n.Name, BindAddr: n.BindAddr, RPCAddr: n.RPCAddr, Profile: c.opts.Profile,
		Tags: n.Tags, Join: join, Replay: replay}
	node := strings.NewReplacer("{name}", n.Name, "{dir}", n.Dir)
	for _, h := range c.opts.ExtraHandlers {
		conf.ExtraHandlers = append(conf.ExtraHandlers, node.Replace(h))
	}
	if c.opts.Handler != "" {
		conf.Handler = node.Replace(c.opts.Handler)
	}
	args := conf.Args()
	if c.opts.RPCAuth != "" {
		// serf 0.8's agent takes the RPC key only from a config file.
		file := filepath.Join(n.Dir, "serf.json")
		b, _ := json.Marshal(map[string]string{"rpc_auth": c.opts.RPCAuth})
		if err := os.WriteFile(file, b, 0o600); err != nil {
			return err
		}
		args = append(args, "-config-file", file)
	}
	if n.spec.EncryptKey != "" {
		args = append(args, "-encrypt", n.spec.EncryptKey)
	}
	if n.spec.ConfigDir != "" {
		args = append(args, "-config-dir", n.spec.ConfigDir)
	}
	cmd := c.serf(args...)
	cmd.Dir = n.Dir
	cmd.Env = append(append(os.Environ(), c.opts.Env...), n.spec.Env...)
	a, err := StartAgent(cmd, n.LogPath, func() error { _, err := c.members(n); return err })
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.agent = a
	n.mu.Unlock()
	return nil
}

// Restart starts n's agent again after a Kill, a Stop or a SIGTERM: the
// same name, tags, addresses, directory and handler (so the same state),
// joining the cluster through join; with replay, serf's -replay makes it
// handle again the user events the cluster still holds. It returns once
// join sees n alive. The agent stops with the cluster.
func (c *Cluster) Restart(t testing.TB, n, join *Node, replay bool) {
	t.Helper()
	if !n.current().Wait(10 * time.Second) {
		t.Fatalf("restarting serf agent %s: it still runs 10s after it was stopped", n.Name)
	}
	if err := c.run(n, join.BindAddr, replay); err != nil {
		t.Fatalf("restarting serf agent %s: %v%s", n.Name, err, c.logTails())
	}
	c.WaitStatus(t, join, n.Name, "alive", 30*time.Second)
}

// Rejoin starts n's agent again after a Stop, a Kill or a SIGTERM, as
// Restart does, joining through join, but returns as soon as its RPC
// answers, without a testing.TB: for agents that leave and rejoin in the
// background while a test goes on (a fleet under churn).
func (c *Cluster) Rejoin(n, join *Node) error {
	if !n.current().Wait(10 * time.Second) {
		return fmt.Errorf("rejoining serf agent %s: it still runs 10s after it was stopped", n.Name)
	}
	if err := c.run(n, join.BindAddr, false); err != nil {
		return fmt.Errorf("rejoining serf agent %s: %w", n.Name, err)
	}
	return nil
}

// serf is the serf command with args, inside Options.NetNS when set
// (`ip netns exec` execs serf in its own process: the pid, and so the
// process group and Pdeathsig, are serf's).
func (c *Cluster) serf(args ...string) *exec.Cmd {
	if c.opts.NetNS != "" {
		return exec.Command("ip", append([]string{"netns", "exec", c.opts.NetNS, "serf"}, args...)...)
	}
	return exec.Command("serf", args...)
}

// taken reports whether a port is one of the cluster's agents': FreePort
// asks the host, which does not see the ports bound in Options.NetNS.
func (c *Cluster) taken(ports ...int) bool {
	for _, n := range c.Nodes() {
		for _, p := range ports {
			s := fmt.Sprintf(":%d", p)
			if strings.HasSuffix(n.BindAddr, s) || strings.HasSuffix(n.RPCAddr, s) {
				return true
			}
		}
	}
	return false
}

// members asks node's agent for its member list through the serf CLI.
func (c *Cluster) members(n *Node) ([]Member, error) {
	args := []string{"members", "-rpc-addr", n.RPCAddr, "-format", "json"}
	if c.opts.RPCAuth != "" {
		args = append(args, "-rpc-auth", c.opts.RPCAuth)
	}
	ms, err := runMembers(c.serf(args...))
	if err != nil {
		return nil, fmt.Errorf("serf members: %w", err)
	}
	return ms, nil
}

// Members is node's view of the cluster, as `serf members` shows it.
func (c *Cluster) Members(t testing.TB, n *Node) []Member {
	t.Helper()
	ms, err := c.members(n)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// waitJoined waits until every running agent sees every running agent alive.
func (c *Cluster) waitJoined(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(c.opts.JoinTimeout)
	var last string
	for time.Now().Before(deadline) {
		last = c.joinProblem()
		if last == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("serf agents did not all join within %s: %s%s", c.opts.JoinTimeout, last, c.logTails())
}

func (c *Cluster) joinProblem() string {
	var running []*Node
	for _, n := range c.Nodes() {
		if !n.dead() {
			running = append(running, n)
		}
	}
	for _, n := range running {
		ms, err := c.members(n)
		if err != nil {
			return err.Error()
		}
		alive := map[string]bool{}
		for _, m := range ms {
			alive[m.Name] = m.Status == "alive"
		}
		for _, o := range running {
			if !alive[o.Name] {
				return fmt.Sprintf("%s does not see %s alive", n.Name, o.Name)
			}
		}
	}
	return ""
}

// WaitStatus waits until observer lists node with the given serf status
// (alive, failed, left). timeout 0 means 30s.
func (c *Cluster) WaitStatus(t testing.TB, observer *Node, node, status string, timeout time.Duration) {
	t.Helper()
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	seen := "not listed"
	for time.Now().Before(deadline) {
		ms, err := c.members(observer)
		if err == nil {
			for _, m := range ms {
				if m.Name == node {
					seen = m.Status
				}
			}
			if seen == status {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s still sees %s %s after %s, want %s", observer.Name, node, seen, timeout, status)
}

// current is the node's agent: the last one started.
func (n *Node) current() *Agent {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.agent
}

func (n *Node) dead() bool { return !n.current().Running() }

// Kill ends the agent with SIGKILL, like a crashed machine: the others
// notice through failure detection and list it failed. Safe to call twice.
func (n *Node) Kill() { n.current().Kill() }

// Terminate sends SIGTERM to the agent alone, not to the handlers it runs,
// as systemd's KillMode=process does (serf 0.8 then shuts down without
// leaving: the others list it failed), and waits at most d for it to exit.
// It reports whether it did.
func (n *Node) Terminate(d time.Duration) bool {
	a := n.current()
	a.Signal(syscall.SIGTERM)
	return a.Wait(d)
}

// Stop makes the agent leave the cluster gracefully (the others list it
// left) and waits for it to exit.
func (n *Node) Stop() {
	args := []string{"leave", "-rpc-addr", n.RPCAddr}
	if n.cluster.opts.RPCAuth != "" {
		args = append(args, "-rpc-auth", n.cluster.opts.RPCAuth)
	}
	_ = n.cluster.serf(args...).Run()
	a := n.current()
	a.Wait(10 * time.Second)
	a.Kill()
}

// stopAll ends every agent: SIGTERM to its process group, SIGKILL after 3s.
// A failed test keeps the directory and prints the agents' log tails.
func (c *Cluster) stopAll(t testing.TB) {
	for _, n := range c.Nodes() {
		n.current().SignalGroup(syscall.SIGTERM)
	}
	for _, n := range c.Nodes() {
		a := n.current()
		a.Wait(3 * time.Second)
		a.Kill()
	}
	if t.Failed() {
		t.Logf("serf agents' logs kept in %s%s", c.dir, c.logTails())
		return
	}
	os.RemoveAll(c.dir)
}

func (c *Cluster) logTails() string {
	var b strings.Builder
	for _, n := range c.Nodes() {
		out, _ := os.ReadFile(n.LogPath)
		fmt.Fprintf(&b, "\n--- %s (%s), last lines:\n%s", n.Name, n.LogPath, tail(string(out), 40))
	}
	return b.String()
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}
