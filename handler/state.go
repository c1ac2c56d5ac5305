package handler

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/serfdeploy/serfdeploy/internal/atomicfile"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// Record is what a node keeps about one deploy or run id: a master's code
// sync, an agent's puppet run, or both on a node that is both.
type Record struct {
	ID          string           `json:"id"`
	Kind        string           `json:"kind"` // "run" or "sync"
	Phase       string           `json:"phase"`
	Environment string           `json:"environment,omitempty"`
	Module      string           `json:"module,omitempty"`
	Ref         string           `json:"ref,omitempty"`
	Commit      string           `json:"commit,omitempty"`
	Reached     int              `json:"reached,omitempty"` // sync: nodes that answered the trigger
	Listed      int              `json:"listed,omitempty"`  // sync: alive targets the trigger was sent to
	Targets     int              `json:"targets,omitempty"` // run: targets the CLI listed (RunRequest.Targets)
	Build       *protocol.Build  `json:"build,omitempty"`
	Deploy      *protocol.Deploy `json:"deploy,omitempty"` // sync: the event, for the trigger
	// Puppet is what the request passes through to Puppet (run records).
	Puppet protocol.PuppetFlags `json:"puppet,omitzero"`
	// WaitUntil: a queued run (another was in progress) waits for its turn
	// until then, and is then recorded busy.
	WaitUntil time.Time `json:"wait_until,omitzero"`

	// HandlerPID is the handler that claimed the record, until it names
	// the worker: a record with no worker whose handler is gone never
	// started (the handler was stopped in between, as when its agent
	// leaves mid-query), and the next request for the id takes it over.
	HandlerPID   int   `json:"handler_pid,omitempty"`
	HandlerStart int64 `json:"handler_start,omitempty"`

	WorkerPID   int   `json:"worker_pid,omitempty"`
	WorkerStart int64 `json:"worker_start,omitempty"` // clock ticks since boot, from /proc: guards against pid reuse
	// PuppetPID is Puppet's process (its own group), so that a run whose
	// worker died is not called over while Puppet goes on.
	PuppetPID   int   `json:"puppet_pid,omitempty"`
	PuppetStart int64 `json:"puppet_start,omitempty"`
	// SummaryBefore marks Puppet's summary file as it was before this
	// run's Puppet started (summaryMark).
	SummaryBefore string `json:"summary_before,omitempty"`

	// Outcome is how the run ended, in the words of the log record and
	// the CLI's result (its duration is set when it ends).
	protocol.Outcome

	Created  time.Time `json:"created"`
	Synced   time.Time `json:"synced,omitzero"` // sync: the module installed (the trigger follows)
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

// final reports whether the record's worker is done with it: a run or sync
// that ended, a master that fired the trigger, or one that only synced
// (the CLI triggers the runs batch by batch).
func (r *Record) final() bool {
	return protocol.Done(r.Phase) || r.Phase == protocol.PhaseTriggered ||
		(r.Phase == protocol.PhaseSynced && !r.Finished.IsZero())
}

// setWorker names the worker process that took the record, so that a status
// query can tell a dead worker from a running one (and a reused pid).
func (r *Record) setWorker(pid int) {
	r.WorkerPID = pid
	r.WorkerStart, _ = processStart(pid)
}

// request is what the record was made for.
func (r *Record) request() protocol.Request {
	return protocol.Request{Module: r.Module, Ref: r.Ref, Environment: r.Environment}
}

// Record kinds.
const (
	KindRun  = "run"
	KindSync = "sync"
)

// state is a node's state directory:
//
//	lock                  flock held while deciding whether to start work
//	active                the id of the puppet run in progress, if any
//	runs/<id>/run.json    an agent's run record
//	runs/<id>/sync.json   a master's code-sync record
//	runs/<id>/*.log       the worker's and puppet's output
//	releases/             installed module versions (masters)
//	spool/                log records not yet accepted by the logging service
type state struct {
	dir string
}

func (s state) runDir(id string) string { return filepath.Join(s.dir, "runs", id) }

func (s state) recordPath(id, kind string) string {
	return filepath.Join(s.runDir(id), kind+".json")
}

func (s state) spoolDir() string { return filepath.Join(s.dir, "spool") }

// lock takes the state directory's exclusive lock; the handler and workers
// hold it only for short decisions.
func (s state) lock() (unlock func(), err error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// update changes a record under the state lock. A worker uses it for its
// first write: the handler that spawned it still holds the lock until it has
// recorded the worker's pid, so the worker's write cannot be overwritten by
// the handler's (a run that fails within milliseconds would otherwise be
// left "pending" and later reported worker_died).
func (s state) update(id, kind string, change func(*Record)) (*Record, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	r, err := s.load(id, kind)
	if err != nil {
		return nil, err
	}
	change(r)
	return r, s.save(r)
}

// saveLocked saves a record under the state lock: a worker's result and
// the status handler's worker_died verdict never interleave.
func (s state) saveLocked(r *Record) error {
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	return s.save(r)
}

// create writes a new record and fails with os.ErrExist if there is one
// already: this is how a duplicate delivery of an event is recognised.
// The caller holds the state lock, and a claim and its record's write are
// made within one hold: a claim found without a record is what a failed
// write left (a full disk). It is taken over rather than honoured, or the
// id would stay claimed, with no record, for good.
func (s state) create(r *Record) error {
	if err := os.MkdirAll(s.runDir(r.ID), 0o700); err != nil {
		return err
	}
	path := s.recordPath(r.ID, r.Kind)
	f, err := os.OpenFile(path+".claim", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	switch {
	case errors.Is(err, os.ErrExist):
		old, lerr := s.load(r.ID, r.Kind)
		if lerr == nil && old.neverStarted() {
			break // its handler was stopped before a worker took it: take it over
		}
		if _, serr := os.Lstat(path); !errors.Is(serr, os.ErrNotExist) {
			return err // a record (readable or not) stands
		}
	case err != nil:
		return err
	default:
		f.Close()
	}
	return s.save(r)
}

// save writes a record atomically: a reader (or a crash) never sees half a
// file.
func (s state) save(r *Record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.recordPath(r.ID, r.Kind), b)
}

// load reads a record; an error other than os.ErrNotExist names the file.
func (s state) load(id, kind string) (*Record, error) {
	b, err := os.ReadFile(s.recordPath(id, kind))
	if err != nil {
		return nil, err // a *PathError: it names the file
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("record %s is damaged: %w", s.recordName(id, kind), err)
	}
	return &r, nil
}

// recordName is a record's path in the state directory, for messages.
func (s state) recordName(id, kind string) string {
	return filepath.Join("runs", id, kind+".json")
}

// read reads id's record of kind for an answer: os.ErrNotExist when the
// node has none, else an error naming the file when the record cannot be
// read. A claim with no record (its write failed, or its handler was
// stopped between the two, as an agent that leaves mid-query does) is a
// *claimError: no record, but said so; the next request for the id takes
// the claim over (create), so an answer must not make it final.
func (s state) read(id, kind string) (*Record, error) {
	r, err := s.load(id, kind)
	if err == nil && r.neverStarted() {
		return s.abandon(r)
	}
	if !errors.Is(err, os.ErrNotExist) || !s.exists(id, kind) {
		return r, err
	}
	// A handler between its claim and its write holds the lock: decide
	// under it.
	unlock, err := s.lock()
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", s.dir, err)
	}
	defer unlock()
	r, err = s.load(id, kind)
	if !errors.Is(err, os.ErrNotExist) || !s.exists(id, kind) {
		return r, err
	}
	return nil, &claimError{s.recordName(id, kind)}
}

// abandon turns a record that never started back into a bare claim, so
// that it is answered as no record (the CLI sends the request again) and
// the next request takes it over (create).
func (s state) abandon(r *Record) (*Record, error) {
	unlock, err := s.lock()
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", s.dir, err)
	}
	defer unlock()
	now, err := s.load(r.ID, r.Kind)
	if err != nil || !now.neverStarted() {
		return now, err
	}
	path := s.recordPath(r.ID, r.Kind)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return now, err
	}
	if r.Kind == KindRun {
		s.clearActive(r.ID)
	}
	return nil, &claimError{s.recordName(r.ID, r.Kind)}
}

// claimError: a record claimed but never written. It is "no record"
// (os.ErrNotExist) with a reason.
type claimError struct{ record string }

func (e *claimError) Error() string {
	return fmt.Sprintf("record %s was claimed but never written (a write failed, or its handler was stopped); the next request for this id takes it over", e.record)
}

func (e *claimError) Unwrap() error { return os.ErrNotExist }

// writable tries a small write in the state directory: a full disk or a
// read-only one fails it.
func (s state) writable() error {
	f, err := os.CreateTemp(s.dir, ".probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write([]byte("x"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// exists reports whether a record (or a claim on one) exists for id.
func (s state) exists(id, kind string) bool {
	_, err := os.Stat(s.recordPath(id, kind) + ".claim")
	return err == nil
}

// active returns the id of the run in progress, or "" when none is (or its
// worker has died).
func (s state) active() string {
	b, err := os.ReadFile(filepath.Join(s.dir, "active"))
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(string(b))
	r, err := s.load(id, KindRun)
	if err != nil || protocol.Done(r.Phase) || !r.workerAlive() {
		return ""
	}
	return id
}

func (s state) setActive(id string) error {
	return writeFileAtomic(filepath.Join(s.dir, "active"), []byte(id+"\n"))
}

func (s state) clearActive(id string) {
	b, err := os.ReadFile(filepath.Join(s.dir, "active"))
	if err == nil && strings.TrimSpace(string(b)) == id {
		os.Remove(filepath.Join(s.dir, "active"))
	}
}

// latest returns the most recently created record of a kind.
func (s state) latest(kind string) (*Record, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "runs"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var best *Record
	for _, e := range entries {
		r, err := s.load(e.Name(), kind)
		if err != nil {
			continue
		}
		// A request refused as busy, disabled or skipped never ran
		// Puppet: the last run is the last one Puppet made.
		if kind == KindRun && r.Started.IsZero() && r.Phase != protocol.PhasePending && r.Phase != protocol.PhaseRunning {
			continue
		}
		if best == nil || r.Created.After(best.Created) {
			best = r
		}
	}
	return best, nil
}

// prune removes the oldest run directories beyond keep, but never the run
// in progress.
func (s state) prune(keep int) {
	pruneOldest(filepath.Join(s.dir, "runs"), keep, s.active())
}

// reconcile turns a record whose worker vanished into a failure: a run whose
// worker died is reported failed, not running forever.
func (s state) reconcile(r *Record, recover func(*Record) bool) *Record {
	if r == nil || r.final() || r.puppetAlive() {
		return r
	}
	if r.WorkerPID == 0 {
		// Claimed but the worker never recorded itself: give it a grace
		// period to start before calling it dead.
		if time.Since(r.Created) < 30*time.Second {
			return r
		}
	} else if r.workerAlive() {
		return r
	}
	// The worker may have saved its result and exited since r was read:
	// decide again under the lock, from what is on disk now.
	unlock, err := s.lock()
	if err != nil {
		return r
	}
	defer unlock()
	now, err := s.load(r.ID, r.Kind)
	if err != nil {
		return r
	}
	if now.final() || now.workerAlive() ||
		(now.WorkerPID == 0 && time.Since(now.Created) < 30*time.Second) {
		return now
	}
	if now.puppetAlive() {
		return now
	}
	now.Finished = time.Now()
	if now.PuppetPID == 0 || recover == nil || !recover(now) {
		now.Phase = protocol.PhaseFailed
		now.Reason = protocol.ReasonWorkerDied
		now.Message = "the worker process ended without recording a result"
	}
	if err := s.save(now); err != nil {
		return now
	}
	if now.Kind == KindRun {
		s.clearActive(now.ID)
	}
	return now
}

// puppetAlive reports whether the run's Puppet process still runs.
func (r *Record) puppetAlive() bool {
	if r.PuppetPID == 0 {
		return false
	}
	start, err := processStart(r.PuppetPID)
	return err == nil && start == r.PuppetStart
}

// neverStarted: no worker took the record and the handler that made it
// is gone, so none ever will.
func (r *Record) neverStarted() bool {
	if r.final() || r.WorkerPID != 0 || r.HandlerPID == 0 {
		return false
	}
	start, err := processStart(r.HandlerPID)
	return err != nil || start != r.HandlerStart
}

func (r *Record) workerAlive() bool {
	if r.WorkerPID == 0 {
		return false
	}
	start, err := processStart(r.WorkerPID)
	return err == nil && start == r.WorkerStart
}

// processStart reads a process's start time (field 22 of /proc/PID/stat), so
// that a reused pid is not mistaken for our worker.
// startWorker is a worker's first step: it takes id's record (and phase,
// when given) as its own.
func (s *state) startWorker(id, kind, phase string) (*Record, error) {
	return s.update(id, kind, func(r *Record) {
		r.setWorker(os.Getpid())
		if phase != "" {
			r.Phase = phase
		}
		r.Message = "" // a queued run's "queued behind" is over
		r.Started = time.Now()
	})
}

func processStart(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields resume after ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	// fields[0] is field 3 (state); field 22 is fields[19].
	if fields[0] == "Z" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return strconv.ParseInt(fields[19], 10, 64)
}

// writeFileAtomic writes via a temporary file in the same directory and a
// rename, with an fsync so that a crash leaves the old or the new content.
// writeFileAtomic writes node state: records may carry build URLs and
// Puppet's messages, so only the node's own user reads them.
func writeFileAtomic(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o600)
}
