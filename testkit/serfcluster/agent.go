package serfcluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"sync"
	"syscall"
	"time"
)

// The pieces in this file start and watch one serf agent without a
// testing.TB, so that a program (bench/oracle, run with `go run`) can use
// them as well as the tests; Cluster is built on them.

// FreePort finds a loopback port free for TCP (and for UDP too when udp is
// set: serf's gossip uses both on the bind port).
func FreePort(udp bool) (int, error) {
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

// AgentConfig is what one serf agent is started with.
type AgentConfig struct {
	Name     string
	BindAddr string // gossip address, advertised as is
	RPCAddr  string
	Profile  string            // serf -profile; "" is "local" (failure detection in seconds)
	Tags     map[string]string // -tag flags
	Handler  string            // -event-handler; "" is none
	// ExtraHandlers are more -event-handler values, after Handler (serf
	// runs every handler whose filter lets an event through, in order).
	ExtraHandlers []string
	Join          string // the bind address of an agent to join at start; "" is none
	Replay        bool   // -replay: handle again the user events the cluster still holds
}

// Args is the agent's command line after `serf`. Tags come in sorted
// order so that one config always gives one command line.
func (a AgentConfig) Args() []string {
	profile := a.Profile
	if profile == "" {
		profile = "local"
	}
	args := []string{"agent", "-node", a.Name, "-bind", a.BindAddr, "-advertise", a.BindAddr,
		"-rpc-addr", a.RPCAddr, "-profile", profile, "-log-level", "debug"}
	keys := make([]string, 0, len(a.Tags))
	for k := range a.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-tag", k+"="+a.Tags[k])
	}
	if a.Handler != "" {
		args = append(args, "-event-handler", a.Handler)
	}
	for _, h := range a.ExtraHandlers {
		args = append(args, "-event-handler", h)
	}
	if a.Join != "" {
		args = append(args, "-join", a.Join)
	}
	if a.Replay {
		args = append(args, "-replay")
	}
	return args
}

// Member is a line of `serf members -format json`.
type Member struct {
	Name   string            `json:"name"`
	Addr   string            `json:"addr"`
	Status string            `json:"status"`
	Tags   map[string]string `json:"tags"`
}

// Members is the member list of the agent whose RPC is at rpcAddr, name →
// serf status (alive, failed, left), through the serf CLI.
func Members(rpcAddr string) (map[string]string, error) {
	ms, err := runMembers(exec.Command("serf", "members", "-rpc-addr", rpcAddr, "-format", "json"))
	if err != nil {
		return nil, fmt.Errorf("serf members at %s: %w", rpcAddr, err)
	}
	out := make(map[string]string, len(ms))
	for _, m := range ms {
		out[m.Name] = m.Status
	}
	return out, nil
}

// runMembers runs a `serf members -format json` command and decodes it.
func runMembers(cmd *exec.Cmd) ([]Member, error) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %s", err, bytes.TrimSpace(errb.Bytes()))
	}
	var res struct {
		Members []Member `json:"members"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("decoding serf members: %w", err)
	}
	return res.Members, nil
}

// Agent is a serf agent process started by StartAgent.
type Agent struct {
	cmd    *exec.Cmd
	exited chan struct{}
	once   sync.Once
}

// StartAgent starts cmd, a `serf agent` command, with its output appended
// to logPath, and waits (10 s at most) until ready, which asks the agent's
// RPC, succeeds. The agent gets its own process group, so that a Kill
// reaches the handlers it runs too, and SIGKILL when this process dies, so
// that none outlives a crashed test or program. An agent that exits at
// start (a port taken meanwhile, say) or does not get ready is an error;
// the latter is killed.
func StartAgent(cmd *exec.Cmd, logPath string, ready func() error) (*Agent, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w (is the Debian package serf installed?)", err)
	}
	a := &Agent{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(a.exited) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-a.exited:
			out, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("agent exited at start:\n%s", tail(string(out), 20))
		default:
		}
		err := ready()
		if err == nil {
			return a, nil
		}
		if time.Now().After(deadline) {
			a.Kill()
			return nil, fmt.Errorf("agent not ready within 10s: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Pid is the agent's process id, which is also its process group's.
func (a *Agent) Pid() int { return a.cmd.Process.Pid }

// Exited is closed once the agent has exited.
func (a *Agent) Exited() <-chan struct{} { return a.exited }

// Running reports whether the agent has not exited yet.
func (a *Agent) Running() bool {
	select {
	case <-a.exited:
		return false
	default:
		return true
	}
}

// Wait waits at most d for the agent to exit and reports whether it did.
func (a *Agent) Wait(d time.Duration) bool {
	select {
	case <-a.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// Signal sends sig to the agent alone, not to the handlers it runs (as
// systemd's KillMode=process does).
func (a *Agent) Signal(sig syscall.Signal) error { return a.cmd.Process.Signal(sig) }

// SignalGroup sends sig to the agent's process group (the agent and the
// handlers it runs), unless the agent has exited.
func (a *Agent) SignalGroup(sig syscall.Signal) {
	if a.Running() {
		syscall.Kill(-a.Pid(), sig)
	}
}

// Kill SIGKILLs the agent's process group, like a crashed machine (the
// others notice through failure detection and list it failed), and waits
// until the agent has exited. Only the first call sends the signal: the
// group's id may belong to another process by the second.
func (a *Agent) Kill() {
	a.once.Do(func() { syscall.Kill(-a.Pid(), syscall.SIGKILL) })
	<-a.exited
}
