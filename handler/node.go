package handler

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// Node is this machine as the handler sees it: its config, its serf identity
// and its state directory.
type Node struct {
	cfg     *Config
	cfgPath string
	name    string
	role    string
	st      state
	log     *log.Logger
	getenv  func(string) string
	// worker starts a detached worker process; replaced in tests.
	worker func(kind, id string) (pid int, err error)
	// killNow, in a worker, closes on a second stop signal.
	killNow <-chan struct{}
	// stateErr: the state directory or its handler.log cannot be written
	// (a read-only or broken disk). The node still answers every query,
	// with this error, rather than fall silent.
	stateErr error
}

// NewNode builds the node from its config and serf's environment (the
// SERF_* variables serf sets for handlers and passes on to workers).
func NewNode(cfg *Config, cfgPath string, getenv func(string) string) (*Node, error) {
	name := getenv("SERF_SELF_NAME")
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("SERF_SELF_NAME is not set and the hostname is unknown: %w", err)
		}
		name = h
	}
	n := &Node{cfg: cfg, cfgPath: cfgPath, name: name, st: state{dir: cfg.StateDir}, getenv: getenv}
	n.role = n.deriveRole()
	n.worker = n.spawnSelf
	// Never log to stdout or stderr: serf sends both back as the answer to
	// a query. Without a log the node still answers, with the reason.
	var logTo io.Writer = io.Discard
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		n.stateErr = fmt.Errorf("state directory %s: %w", cfg.StateDir, err)
	} else if f, err := os.OpenFile(filepath.Join(cfg.StateDir, "handler.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err != nil {
		n.stateErr = fmt.Errorf("state directory %s: handler log: %w", cfg.StateDir, err)
	} else {
		logTo = f // open for the life of this short process
	}
	n.log = log.New(lineWriter{logTo}, fmt.Sprintf("%s[%d] ", n.name, os.Getpid()), log.LstdFlags|log.Lmsgprefix)
	return n, nil
}

// stateProblem says why this node cannot record anything now, or nil: its
// state directory could not be opened, or a small test write there fails
// (a full or read-only disk). Handlers that answer queries ask it, so that
// such a node answers with the reason instead of falling silent or
// answering as if all were well.
func (n *Node) stateProblem() error {
	if n.stateErr != nil {
		return n.stateErr
	}
	if err := n.st.writable(); err != nil {
		return fmt.Errorf("state directory %s cannot be written: %w", n.st.dir, err)
	}
	return nil
}

// Name is the node's serf name.
func (n *Node) Name() string { return n.name }

// Role is master or agent.
func (n *Node) Role() string { return n.role }

func (n *Node) isMaster() bool { return n.role == RoleMaster }

// deriveRole uses the config's role, else the serf tag named by master_tag,
// which serf passes to handlers as SERF_TAG_<KEY>.
func (n *Node) deriveRole() string {
	if n.cfg.Role != "" {
		return n.cfg.Role
	}
	key, re, err := serfrpc.ParseTag(n.cfg.MasterTag)
	if err != nil {
		return RoleAgent
	}
	value, ok := n.tag(key)
	if ok && regexp.MustCompile(serfrpc.Anchor(re)).MatchString(value) {
		return RoleMaster
	}
	return RoleAgent
}

var unsafeEnvChars = regexp.MustCompile(`[^A-Z0-9_]`)

// tag reads one of the node's serf tags from the environment, named the way
// serf names them (upper case, other characters replaced by _).
func (n *Node) tag(key string) (string, bool) {
	env := "SERF_TAG_" + unsafeEnvChars.ReplaceAllString(strings.ToUpper(key), "_")
	v := n.getenv(env)
	return v, v != ""
}

// readPayload reads serf's payload from stdin, refusing anything larger than
// serf could have sent.
func readPayload(r io.Reader, limit int) ([]byte, error) {
	if r == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("payload over %d bytes", limit)
	}
	return b, nil
}

// newRecord is the record of a request this node takes. A deploy (a sync,
// or a run of a module) names no environment when it means the node's
// configured one; an ad-hoc run that names none keeps the one Puppet
// itself would use (puppet.conf), as `mco puppet runonce` does: its
// record's environment stays empty.
func (n *Node) newRecord(id, kind, phase string, req protocol.Request, build *protocol.Build) *Record {
	if req.Environment == "" && (kind == KindSync || req.Module != "") {
		req.Environment = n.cfg.Environment
	}
	r := &Record{
		ID: id, Kind: kind, Phase: phase, Build: build, Created: time.Now(),
		Environment: req.Environment, Module: req.Module, Ref: req.Ref,
		HandlerPID: os.Getpid(),
	}
	r.HandlerStart, _ = processStart(r.HandlerPID)
	return r
}
