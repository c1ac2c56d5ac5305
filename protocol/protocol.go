// Package protocol defines what serfdeploy sends through serf: the names of
// the event and queries, their payloads and answers, and the validation both
// sides apply. Serf limits a user event payload to 512 bytes and a query
// response to 1024, so every message here is compact JSON and every encoder
// checks (or enforces) those limits.
package protocol

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
)

// Names of the serf event and queries serfdeploy uses.
const (
	EventDeploy       = "deploy"
	QueryPuppetRun    = "puppetrun"
	QueryPuppetStatus = "puppet-status"
	// puppet-disable and puppet-enable set or clear Puppet's own agent lock
	// (what `puppet agent --disable "why"` writes), so that Puppet run by
	// hand or by cron honours it too.
	QueryPuppetDisable = "puppet-disable"
	QueryPuppetEnable  = "puppet-enable"
)

// LockRequest is the payload of puppet-disable (Message: why) and
// puppet-enable (empty).
type LockRequest struct {
	Message string `json:"msg,omitempty"`
}

// LockAnswer is a node's answer to puppet-disable or puppet-enable.
type LockAnswer struct {
	V       int    `json:"v"`
	Node    string `json:"node"`
	Result  string `json:"result"` // LockDisabled, LockEnabled, LockAlready or LockError
	Message string `json:"msg,omitempty"`
}

// Results of puppet-disable and puppet-enable.
const (
	LockDisabled = "disabled" // now disabled
	LockEnabled  = "enabled"  // now enabled
	LockAlready  = "already"  // it was so already; Message says why it was disabled
	LockError    = "error"
)

// ValidDisableMessage checks the reason given for disabling Puppet: it is
// shown by Puppet on every refused run and by serfdeploy in reports.
func ValidDisableMessage(s string) error {
	if strings.TrimSpace(s) == "" || len(s) > 300 || OneLine(s, 300) != s {
		return fmt.Errorf("the disable message must be one line of plain text, 1 to 300 characters, saying why and who (e.g. \"kernel upgrade, bob\")")
	}
	return nil
}

// Serf's limits, measured on serf 0.8: a larger event or query is refused by
// the agent; a larger query response is dropped with only a warning in the
// agent's log. Each counts the msgpack-encoded message (serfsize.go).
const (
	MaxEventPayload  = 512
	MaxQuerySize     = 1024
	MaxQueryResponse = 1024
)

// Version of the messages below; answers carry it so that a mixed fleet can be
// told apart from garbage.
const Version = 1

// Build says which CI build started a deploy, so that a log record leads back
// to it.
type Build struct {
	Tag string `json:"tag,omitempty"`
	URL string `json:"url,omitempty"`
	Job string `json:"job,omitempty"`
}

// Deploy is the payload of the `deploy` user event, handled by masters.
type Deploy struct {
	ID          string            `json:"id"`
	Module      string            `json:"module"`
	Ref         string            `json:"ref"`
	Environment string            `json:"env,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`  // key -> regexp as the user gave it; receivers anchor it
	Nodes       []string          `json:"nodes,omitempty"` // exact node names
	SkipMasters bool              `json:"skip_masters,omitempty"`
	Build       *Build            `json:"build,omitempty"`
	// WaitSec: a target busy with another run queues this one and waits
	// up to this many seconds for it to end (--on-running wait); 0: the
	// target answers busy at once.
	WaitSec int `json:"wait_s,omitempty"`
	// SyncOnly: masters install the code and fire no puppetrun; the CLI
	// starts the runs itself, batch by batch (--batch, --canary).
	SyncOnly bool `json:"sync_only,omitempty"`
	// Targets is how many nodes the CLI listed as targets when it fired:
	// a re-attached watch that finds fewer records of the id knows that
	// some never ran, although it cannot name them.
	Targets int `json:"targets,omitempty"`
	PuppetFlags
}

// PuppetFlags are what the user passes through to Puppet on every target.
type PuppetFlags struct {
	Noop     bool   `json:"noop,omitempty"`        // puppet --noop: report what would change, change nothing
	Tags     string `json:"puppet_tags,omitempty"` // puppet --tags: comma-separated (not "tags": the deploy event has its target tags there)
	SkipTags string `json:"skip_tags,omitempty"`   // puppet --skip_tags: comma-separated
	// SplaySec: each target waits a random part of this many seconds
	// before it starts Puppet (--splay), so that a fleet does not reach
	// the Puppet server all at once.
	SplaySec int `json:"splay_s,omitempty"`
}

// MaxSplaySec bounds --splay: an hour, Puppet's own default splaylimit
// for a 30-minute runinterval being far less.
const MaxSplaySec = 3600

// Validate checks the tag lists against Puppet's own tag syntax, so that
// nothing else reaches a node's command line.
func (f PuppetFlags) Validate() error {
	for _, f := range [][2]string{{"--puppet-tags", f.Tags}, {"--skip-tags", f.SkipTags}} {
		if v := f[1]; v != "" && (len(v) > 200 || !puppetTags.MatchString(v)) {
			return fmt.Errorf("%s %q is not valid: comma-separated Puppet tags of lower-case letters, digits and _ . : -, e.g. motd,ntp::config (at most 200 characters)", f[0], Truncate(v, 64))
		}
	}
	if f.SplaySec < 0 || f.SplaySec > MaxSplaySec {
		return fmt.Errorf("--splay %ds is out of range: 0 to %ds", f.SplaySec, MaxSplaySec)
	}
	return nil
}

// RunRequest is the payload of the `puppetrun` query.
type RunRequest struct {
	ID          string `json:"id"`
	Environment string `json:"env,omitempty"`
	Module      string `json:"module,omitempty"`
	Ref         string `json:"ref,omitempty"`
	SkipMasters bool   `json:"skip_masters,omitempty"`
	Build       *Build `json:"build,omitempty"`
	WaitSec     int    `json:"wait_s,omitempty"` // as Deploy.WaitSec
	// Targets: as Deploy.Targets, for a run the CLI fires itself (`run`, a
	// rollout's batches); a deploy's masters keep its count.
	Targets int `json:"targets,omitempty"`
	PuppetFlags
}

// Request is what the deploy event asks for.
func (d Deploy) Request() Request {
	return Request{Module: d.Module, Ref: d.Ref, Environment: d.Environment}
}

// Request is what the puppetrun query asks for.
func (r RunRequest) Request() Request {
	return Request{Module: r.Module, Ref: r.Ref, Environment: r.Environment}
}

// Answers to `puppetrun`.
const (
	RunStarted  = "started"  // a run for this id was started now
	RunAlready  = "already"  // this id was already started here (duplicate delivery)
	RunBusy     = "busy"     // another run is in progress; Running names it
	RunSkipped  = "skipped"  // this node is a master and masters were not targeted
	RunDisabled = "disabled" // puppet is administratively disabled here; Message has the reason
	RunRejected = "rejected" // the request was invalid; Message says why
	RunQueued   = "queued"   // another run is in progress; this one starts when it ends (WaitSec)
)

// RunAnswer is a node's answer to `puppetrun`. With RunAlready, Request
// says what the run this node already has for the id was for: an id reused
// for another request must never pass as the same run.
type RunAnswer struct {
	V       int     `json:"v"`
	Node    string  `json:"node"`
	Result  string  `json:"result"`
	Running string  `json:"running,omitempty"`
	Message string  `json:"msg,omitempty"`
	Request Request `json:"req,omitzero"`
}

// Request is what a deploy id was used for: the module and ref a deploy
// shipped (both empty for an ad-hoc run) and the environment. Every answer
// and log record about an id carries it, so that the CLI never counts a
// record of one request as the result of another.
type Request struct {
	Module      string `json:"module,omitempty"`
	Ref         string `json:"ref,omitempty"`
	Environment string `json:"env,omitempty"`
}

// String describes the request for messages: "deploy of motd at v1 to
// environment production".
func (r Request) String() string {
	s := "run"
	if r.Module != "" {
		s = "deploy of " + r.Module + " at " + r.Ref
	}
	if r.Environment != "" {
		s += " in environment " + r.Environment
	}
	return s
}

// Conflicts reports whether a record made for r cannot be the result of
// want. An empty environment in want means "each node's default", which
// matches any.
func (r Request) Conflicts(want Request) bool {
	if r == (Request{}) {
		return false // a node older than this field says nothing of the request
	}
	if r.Module != want.Module || r.Ref != want.Ref {
		return true
	}
	return want.Environment != "" && r.Environment != "" && r.Environment != want.Environment
}

// StatusRequest is the payload of `puppet-status`. An empty ID asks for the
// node's state now (idle or running, and its last run).
type StatusRequest struct {
	ID string `json:"id,omitempty"`
	// Known asks only the nodes with a record of ID to answer; the others
	// stay silent. For finding every node a deploy reached.
	Known bool `json:"known,omitempty"`
	// Select (with an empty ID) asks whether the node matches a selector
	// on its facts and classes (selector.go): every node asked answers, in
	// Phase, SelectMatch, SelectNoMatch, SelectPending or SelectError.
	Select string `json:"select,omitempty"`
}

// Phases a node reports for one deploy id.
const (
	PhaseUnknown   = "unknown"   // this node has no record of the id
	PhaseSyncing   = "syncing"   // master: fetching and installing the module
	PhaseSynced    = "synced"    // master: module installed, puppetrun not yet fired
	PhaseTriggered = "triggered" // master: puppetrun fired at the targets
	PhasePending   = "pending"   // agent: run accepted, puppet not started yet
	PhaseRunning   = "running"   // agent: puppet is running
	PhaseFinished  = "finished"  // agent: puppet finished without failures
	PhaseFailed    = "failed"    // master or agent: see Reason
	PhaseBusy      = "busy"      // agent: another run held the agent; ours did not happen
	PhaseDisabled  = "disabled"  // agent: puppet is administratively disabled
	PhaseSkipped   = "skipped"   // agent: a master that was not a target
)

// Reasons for a failed, busy or disabled phase.
const (
	ReasonSyncFailed        = "sync_failed"        // master: git or install failed
	ReasonUnknownRef        = "unknown_ref"        // master: the ref is not in the module's repository
	ReasonUnknownModule     = "unknown_module"     // master: no repository for the module
	ReasonUnsafeModule      = "unsafe_module"      // master: the module's tree was refused (a link out of it, a reserved name)
	ReasonTriggerFailed     = "trigger_failed"     // master: could not fire puppetrun
	ReasonResourcesFailed   = "resources_failed"   // puppet applied the catalog; some resources failed
	ReasonCompileError      = "compile_error"      // no catalog: the server could not compile it
	ReasonServerUnreachable = "server_unreachable" // no catalog: the server could not be reached
	ReasonDisabled          = "disabled"           // puppet agent --disable
	ReasonLocked            = "locked"             // another puppet run held the agent's lock
	ReasonWorkerDied        = "worker_died"        // the run's worker vanished without a result
	ReasonPuppetError       = "puppet_error"       // puppet failed in a way not classified above
	ReasonStartFailed       = "start_failed"       // the puppet command could not be started
	ReasonInterrupted       = "interrupted"        // the worker was stopped (SIGTERM) during the run
	ReasonStateError        = "state_error"        // the node cannot read or write its state directory; Message says which file and why
)

// Status is a node's answer to `puppet-status`.
type Status struct {
	V          int     `json:"v"`
	Node       string  `json:"node"`
	Role       string  `json:"role"`
	ID         string  `json:"id,omitempty"`
	Phase      string  `json:"phase"`
	Reason     string  `json:"reason,omitempty"`
	Message    string  `json:"msg,omitempty"`
	Exit       *int    `json:"exit,omitempty"`
	Changed    int     `json:"changed,omitempty"`
	Failed     int     `json:"failed,omitempty"`
	Total      int     `json:"total,omitempty"`
	Duration   float64 `json:"dur,omitempty"`
	Pending    int     `json:"pending,omitempty"`     // noop run: resources that would change
	Started    int64   `json:"started,omitempty"`     // unix seconds
	Finished   int64   `json:"finished,omitempty"`    // unix seconds
	Running    string  `json:"running,omitempty"`     // id of the run in progress on this node now
	Sync       string  `json:"sync,omitempty"`        // master: the code-sync phase for ID
	SyncMsg    string  `json:"sync_msg,omitempty"`    // master: git's error, or what the trigger reached
	SyncReason string  `json:"sync_reason,omitempty"` // master: why the sync failed
	Commit     string  `json:"commit,omitempty"`      // master: the commit installed
	Reached    int     `json:"reached,omitempty"`     // master: nodes that answered its puppetrun trigger
	Listed     int     `json:"listed,omitempty"`      // master: alive targets its trigger was sent to
	Targets    int     `json:"targets,omitempty"`     // targets the CLI listed (master: Deploy.Targets; agent: RunRequest.Targets)
	Batched    bool    `json:"batched,omitempty"`     // master: a rollout's sync (Deploy.SyncOnly): synced is its end, the CLI fires the runs
	Last       *Status `json:"last,omitempty"`        // with an empty request ID: the node's last run
	// Request says what this node's record of ID was made for.
	Request Request `json:"req,omitzero"`
	// Applied is the code version the run applied (Puppet's config_version).
	Applied string `json:"applied,omitempty"`
	// LogSetAside counts, with an empty request ID, the log records the
	// logging service refused for good, kept in the node's spool/rejected.
	LogSetAside int `json:"log_set_aside,omitempty"`
	// Disabled, with an empty request ID, says why Puppet is disabled on
	// this node (its agent lock), if it is.
	Disabled string `json:"disabled,omitempty"`
	// Puppet, with an empty request ID, is Puppet's own state on this
	// node, whoever ran it (puppetstate.go).
	Puppet *PuppetState `json:"puppet,omitempty"`
}

// Done reports whether the phase is final for an agent's run.
func Done(phase string) bool {
	switch phase {
	case PhaseFinished, PhaseFailed, PhaseBusy, PhaseDisabled, PhaseSkipped:
		return true
	}
	return false
}

var (
	// The lengths are checked apart: a counted repetition ({0,127})
	// compiles to a program that many states long, and every handler start
	// compiled them all (0.65 ms and 560 KB of the start measured by
	// bench/fleet's TestHandlerStartCost).
	moduleName = boundedName{64, regexp.MustCompile(`^[a-z][a-z0-9_]*$`)}
	envName    = boundedName{64, regexp.MustCompile(`^[a-z0-9_]+$`)}
	refName    = boundedName{128, regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)}
	idName     = boundedName{128, regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:+-]*$`)}
	nodeName   = boundedName{253, regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)}
	puppetTags = regexp.MustCompile(`^[a-z0-9_][a-z0-9_.:-]*(,[a-z0-9_][a-z0-9_.:-]*)*$`)
)

// boundedName is a name pattern with a length limit.
type boundedName struct {
	max     int
	pattern *regexp.Regexp
}

func (b boundedName) MatchString(s string) bool {
	return len(s) <= b.max && b.pattern.MatchString(s)
}

// ValidModule checks a Puppet module name (lower case letters, digits and
// underscores, starting with a letter), as Puppet itself requires.
func ValidModule(s string) error {
	if !moduleName.MatchString(s) {
		return fmt.Errorf("module name %q is not valid: use lower-case letters, digits and underscores, starting with a letter", s)
	}
	return nil
}

// ValidEnvironment checks a Puppet environment name.
func ValidEnvironment(s string) error {
	if !envName.MatchString(s) {
		return fmt.Errorf("environment %q is not valid: use lower-case letters, digits and underscores", s)
	}
	return nil
}

// ValidRef checks a git ref (branch, tag or commit): a safe subset of what git
// allows, so that it can never be read as an option or a shell word.
func ValidRef(s string) error {
	if !refName.MatchString(s) || strings.Contains(s, "..") || strings.Contains(s, "//") ||
		strings.HasSuffix(s, "/") || strings.HasSuffix(s, ".") || strings.HasSuffix(s, ".lock") {
		return fmt.Errorf("git ref %q is not valid: use letters, digits and . _ / -, not starting with - or containing \"..\"", s)
	}
	return nil
}

// ValidID checks a deploy id. Ids name files on the nodes, so they are
// restricted to a safe set.
func ValidID(s string) error {
	if !idName.MatchString(s) {
		return fmt.Errorf("deploy id %q is not valid: use letters, digits and . _ : + -, at most 128 characters", Truncate(s, 64))
	}
	return nil
}

// ValidTagFilter checks one tag filter, key=regexp, as serf's -tag flag
// takes it: every place that takes a filter checks it here.
func ValidTagFilter(key, re string) error {
	if key == "" {
		return fmt.Errorf("tag filter %q must be key=regexp, e.g. segment=qa", key+"="+re)
	}
	// A key reaches serf, logs and reports: no line breaks or other
	// control characters, no "=" (serf's -tag flag splits at the first).
	if strings.ContainsRune(key, '=') || OneLine(key, 256) != key {
		return fmt.Errorf("tag filter %q: the key must be one line of plain text without \"=\", at most 256 bytes", key+"="+re)
	}
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Errorf("tag filter %q: the regexp does not compile: %s", key+"="+re, OneLine(err.Error(), 300))
	}
	// Receivers send it anchored (serfrpc.Anchor); an unclosed \Q would
	// quote the anchoring away, and serf would then match no node at all.
	if _, err := regexp.Compile("^(?:" + re + ")$"); err != nil {
		return fmt.Errorf("tag filter %q: the regexp does not compile once anchored: %s", key+"="+re, OneLine(err.Error(), 300))
	}
	return nil
}

// ValidNode checks a serf node name as given in a filter.
func ValidNode(s string) error {
	if !nodeName.MatchString(s) {
		return fmt.Errorf("node name %q is not valid", s)
	}
	return nil
}

// Validate checks every field of a deploy event.
func (d *Deploy) Validate() error {
	if err := ValidID(d.ID); err != nil {
		return err
	}
	if err := ValidModule(d.Module); err != nil {
		return err
	}
	if err := ValidRef(d.Ref); err != nil {
		return err
	}
	if d.Environment != "" {
		if err := ValidEnvironment(d.Environment); err != nil {
			return err
		}
	}
	for _, n := range d.Nodes {
		if err := ValidNode(n); err != nil {
			return err
		}
	}
	for k, v := range d.Tags {
		if err := ValidTagFilter(k, v); err != nil {
			return err
		}
	}
	if d.WaitSec < 0 {
		return fmt.Errorf("wait_s %d is negative", d.WaitSec)
	}
	return d.PuppetFlags.Validate()
}

// Validate checks a puppetrun request.
func (r *RunRequest) Validate() error {
	if err := ValidID(r.ID); err != nil {
		return err
	}
	if r.Environment != "" {
		if err := ValidEnvironment(r.Environment); err != nil {
			return err
		}
	}
	if r.Module != "" {
		if err := ValidModule(r.Module); err != nil {
			return err
		}
	}
	if r.Ref != "" {
		if err := ValidRef(r.Ref); err != nil {
			return err
		}
	}
	if r.WaitSec < 0 {
		return fmt.Errorf("wait_s %d is negative", r.WaitSec)
	}
	return r.PuppetFlags.Validate()
}

// ErrTooLarge is returned when a message does not fit serf's limit.
type ErrTooLarge struct {
	What  string
	Size  int
	Limit int
}

func (e *ErrTooLarge) Error() string {
	return fmt.Sprintf("%s is %d bytes, over serf's limit of %d", e.What, e.Size, e.Limit)
}

// EncodeDeploy encodes a deploy event payload and checks it fits in one serf
// user event, sized as serf sizes it.
func EncodeDeploy(d *Deploy) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	if !EventFits(EventDeploy, b) {
		return nil, &ErrTooLarge{What: "the deploy event (encoded as serf sends it)", Size: EventSize(EventDeploy, b), Limit: MaxEventPayload}
	}
	return b, nil
}

// DecodeStrict decodes one JSON document into v, refusing unknown fields,
// keys that match a field only in another case (keys.go) and trailing data,
// so that garbage is reported rather than half-read.
func DecodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not a valid message: %w", err)
	}
	// Not dec.More(): it misses a stray ] or } after the document.
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("not a valid message: trailing data after the JSON document")
	}
	if err := checkKeys(b, reflect.TypeOf(v), true); err != nil {
		return fmt.Errorf("not a valid message: %w", err)
	}
	return nil
}

// EncodeAnswer encodes node from's answer to a query and keeps it under
// serf's response limit, as serf sizes it, by shortening its free-text
// messages (the longest first), the only parts of an answer that can grow
// without bound. An answer over the limit is never sent by serf: the asker
// would hear nothing.
func EncodeAnswer(from string, v any, messages ...*string) ([]byte, error) {
	for {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		if ResponseFits(from, b) {
			return b, nil
		}
		var longest *string
		for _, m := range messages {
			if m != nil && (longest == nil || len(*m) > len(*longest)) {
				longest = m
			}
		}
		size := ResponseSize(from, b)
		if longest == nil || *longest == "" {
			return nil, &ErrTooLarge{What: "the answer", Size: size, Limit: MaxQueryResponse}
		}
		// Cut by the excess, or in proportion when JSON escaping makes the
		// encoded text longer than the text (e.g. "<" becomes \u003c), so
		// that an escaped message is shortened rather than emptied.
		limit := MaxQueryResponse - sizeMargin
		target := len(*longest) - (size - limit) - 8
		if prop := len(*longest)*limit/size - 8; prop > target {
			target = prop
		}
		*longest = Truncate(*longest, target)
	}
}

// Truncate shortens s to at most n bytes on a rune boundary, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	if n <= len(mark) {
		return ""
	}
	cut := n - len(mark)
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
