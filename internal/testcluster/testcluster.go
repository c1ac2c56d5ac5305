// Package testcluster starts real serf agents (Debian's `serf`) on
// 127.0.0.1 for integration tests: free ports, given tags and event
// handler, waits until every agent sees every other alive, and stops them
// all when the test ends, failed or not. It talks to the agents through the
// `serf` command line only, so that the code under test (serfrpc) is not
// also the code that checks it.
package testcluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
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
	Handler     string
	RPCAuth     string        // the agents' RPC auth key, if any
	Env         []string      // extra environment for every agent
	Profile     string        // serf -profile; default "local" (failure detection in seconds)
	JoinTimeout time.Duration // default 30s
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
	LogPath  string // the agent's output

	cluster *Cluster
	cmd     *exec.Cmd
	exited  chan struct{}
	once    sync.Once
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
	bindPort, err := freePort(true)
	if err != nil {
		return nil, err
	}
	rpcPort, err := freePort(false)
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
		Name: s.Name, Tags: s.Tags, Dir: nodeDir, cluster: c,
		BindAddr: fmt.Sprintf("127.0.0.1:%d", bindPort),
		RPCAddr:  fmt.Sprintf("127.0.0.1:%d", rpcPort),
		LogPath:  filepath.Join(nodeDir, fmt.Sprintf("serf-%d.log", attempt)),
		exited:   make(chan struct{}),
	}
	args := []string{"agent", "-node", s.Name, "-bind", n.BindAddr, "-advertise", n.BindAddr,
		"-rpc-addr", n.RPCAddr, "-profile", c.opts.Profile, "-log-level", "debug"}
	keys := make([]string, 0, len(s.Tags))
	for k := range s.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-tag", k+"="+s.Tags[k])
	}
	if c.opts.Handler != "" {
		h := strings.NewReplacer("{name}", s.Name, "{dir}", nodeDir).Replace(c.opts.Handler)
		args = append(args, "-event-handler", h)
	}
	if c.opts.RPCAuth != "" {
		// serf 0.8's agent takes the RPC key only from a config file.
		conf := filepath.Join(nodeDir, "serf.json")
		b, _ := json.Marshal(map[string]string{"rpc_auth": c.opts.RPCAuth})
		if err := os.WriteFile(conf, b, 0o600); err != nil {
			return nil, err
		}
		args = append(args, "-config-file", conf)
	}
	if s.EncryptKey != "" {
		args = append(args, "-encrypt", s.EncryptKey)
	}
	if s.ConfigDir != "" {
		args = append(args, "-config-dir", s.ConfigDir)
	}
	if first := c.Nodes(); len(first) > 0 {
		args = append(args, "-join", first[0].BindAddr)
	}
	logFile, err := os.Create(n.LogPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := c.serf(args...)
	cmd.Dir = nodeDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(append(os.Environ(), c.opts.Env...), s.Env...)
	// Own process group so cleanup reaches the handlers too; SIGKILL on the
	// test binary's death so no agent outlives a crashed test run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w (is the Debian package serf installed?)", err)
	}
	n.cmd = cmd
	go func() { cmd.Wait(); close(n.exited) }()

	// Ready when its RPC answers; an early exit means a port was taken.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-n.exited:
			out, _ := os.ReadFile(n.LogPath)
			return nil, fmt.Errorf("agent exited at start:\n%s", tail(string(out), 20))
		default:
		}
		if _, err := c.members(n); err == nil {
			return n, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	n.kill()
	return nil, fmt.Errorf("agent's RPC at %s did not answer within 10s", n.RPCAddr)
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

// taken reports whether a port is one of the cluster's agents': freePort
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

// freePort finds a loopback port free for TCP (and for UDP too when udp is
// set: serf's gossip uses both on the bind port).
func freePort(udp bool) (int, error) {
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !udp {
			l.Close()
			return port, nil
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free loopback port for TCP and UDP")
}

// Member is a line of `serf members -format json`.
type Member struct {
	Name   string            `json:"name"`
	Addr   string            `json:"addr"`
	Status string            `json:"status"`
	Tags   map[string]string `json:"tags"`
}

// members asks node's agent for its member list through the serf CLI.
func (c *Cluster) members(n *Node) ([]Member, error) {
	args := []string{"members", "-rpc-addr", n.RPCAddr, "-format", "json"}
	if c.opts.RPCAuth != "" {
		args = append(args, "-rpc-auth", c.opts.RPCAuth)
	}
	cmd := c.serf(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("serf members: %v: %s", err, errb.String())
	}
	var res struct {
		Members []Member `json:"members"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, err
	}
	return res.Members, nil
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

func (n *Node) dead() bool {
	select {
	case <-n.exited:
		return true
	default:
		return false
	}
}

// Kill ends the agent with SIGKILL, like a crashed machine: the others
// notice through failure detection and list it failed. Safe to call twice.
func (n *Node) Kill() { n.kill() }

func (n *Node) kill() {
	n.once.Do(func() {
		if n.cmd != nil && n.cmd.Process != nil {
			syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	<-n.exited
}

// Stop makes the agent leave the cluster gracefully (the others list it
// left) and waits for it to exit.
func (n *Node) Stop() {
	args := []string{"leave", "-rpc-addr", n.RPCAddr}
	if n.cluster.opts.RPCAuth != "" {
		args = append(args, "-rpc-auth", n.cluster.opts.RPCAuth)
	}
	_ = n.cluster.serf(args...).Run()
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
	}
	n.kill()
}

// stopAll ends every agent: SIGTERM to its process group, SIGKILL after 3s.
// A failed test keeps the directory and prints the agents' log tails.
func (c *Cluster) stopAll(t testing.TB) {
	for _, n := range c.Nodes() {
		if !n.dead() {
			syscall.Kill(-n.cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	for _, n := range c.Nodes() {
		select {
		case <-n.exited:
		case <-time.After(3 * time.Second):
		}
		n.kill()
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
