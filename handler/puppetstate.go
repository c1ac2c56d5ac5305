package handler

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// lastRunSummary is the part of Puppet's last_run_summary.yaml the fleet
// view reads (Puppet 7's raw_summary: version, resources, time, events).
// Puppet writes it at the end of every run, whoever started it.
type lastRunSummary struct {
	Version struct {
		Config any `yaml:"config"` // an integer, a string, or null without a catalog
	} `yaml:"version"`
	Resources struct {
		Total           int `yaml:"total"`
		Changed         int `yaml:"changed"`
		Failed          int `yaml:"failed"`
		FailedToRestart int `yaml:"failed_to_restart"`
		OutOfSync       int `yaml:"out_of_sync"`
	} `yaml:"resources"`
	Time struct {
		ConfigRetrieval float64 `yaml:"config_retrieval"`
		Total           float64 `yaml:"total"`
		LastRun         int64   `yaml:"last_run"`
	} `yaml:"time"`
	Events struct {
		Failure int `yaml:"failure"`
	} `yaml:"events"`
}

// maxSummaryBytes bounds what is read of the summary: Puppet's is under
// 2 kB; anything much larger is not one.
const maxSummaryBytes = 64 << 10

// puppetState is Puppet's own state on this node for the status answer:
// its last run from the summary file, whether a run holds the catalog lock
// now, and whether the agent daemon runs. last is serfdeploy's own last
// run record (nil if none), to tell whose the summarised run was.
func (n *Node) puppetState(last *Record) *protocol.PuppetState {
	ps := &protocol.PuppetState{}
	if _, held := puppetLockHeld(n.cfg.Puppet.StateDir); held {
		ps.Running = true
	}
	ps.Daemon = daemonState(n.cfg.Puppet.PIDFile)
	s, err := readLastRunSummary(n.cfg.Puppet.SummaryFile)
	if err != nil {
		// Never "no runs": a missing or unreadable file says so, and why.
		ps.Error = err.Error()
		return ps
	}
	ps.At = s.Time.LastRun
	ps.Total, ps.Changed = s.Resources.Total, s.Resources.Changed
	ps.Failed = s.Resources.Failed + s.Resources.FailedToRestart
	ps.OutOfSync = s.Resources.OutOfSync
	ps.ConfigRetrieval, ps.Duration = round3(s.Time.ConfigRetrieval), round3(s.Time.Total)
	// No resources at all is no catalog applied (compile error, server
	// unreachable): Puppet's own schedules and filebucket are always there.
	ps.Fail = ps.Failed > 0 || s.Events.Failure > 0 || ps.Total == 0
	if s.Version.Config != nil {
		ps.Version = fmt.Sprint(s.Version.Config)
	}
	ps.By = protocol.ByOther
	if n.ranBySerfdeploy(ps.At, last) {
		ps.By = protocol.BySerfdeploy
		if last != nil && last.ConfigVersion == ps.Version {
			ps.Version = "" // the last run's applied field has it: bytes saved
		}
	}
	return ps
}

// readLastRunSummary reads Puppet's summary file. Its error names the file
// and says what is wrong, in one line for the answer.
func readLastRunSummary(path string) (*lastRunSummary, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no %s: Puppet has not run here, or node.yaml's puppet.summary_file is wrong", path)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read Puppet's summary: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSummaryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read Puppet's summary %s: %w", path, err)
	}
	if len(b) > maxSummaryBytes {
		return nil, fmt.Errorf("%s is over %d bytes: not a Puppet summary", path, maxSummaryBytes)
	}
	var s lastRunSummary
	if err := yaml.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s is not a Puppet summary: %s", path, protocol.OneLine(err.Error(), 200))
	}
	if s.Time.LastRun == 0 {
		// Puppet always writes it; without it the run cannot be placed.
		return nil, fmt.Errorf("%s has no time.last_run: not a Puppet summary, or a truncated one", path)
	}
	return &s, nil
}

// ranBySerfdeploy reports whether a Puppet run that ended at (unix
// seconds) was one of serfdeploy's: its end lies within a run record's
// start and end (or now, for a run going on), give or take a second for
// the summary's whole seconds. last is the newest record; older ones are
// read only when the summary predates it (its run wrote no summary, e.g.
// the catalog failed before Puppet wrote one).
func (n *Node) ranBySerfdeploy(at int64, last *Record) bool {
	if at == 0 || last == nil {
		return false
	}
	if within(at, last) {
		return true
	}
	if at >= last.Started.Unix() {
		return false // after serfdeploy's last run: someone else's
	}
	entries, err := os.ReadDir(filepath.Join(n.st.dir, "runs"))
	if err != nil {
		return false
	}
	for _, e := range entries {
		if r, err := n.st.load(e.Name(), KindRun); err == nil && within(at, r) {
			return true
		}
	}
	return false
}

// within reports whether unix second at falls in r's run of Puppet.
func within(at int64, r *Record) bool {
	if r.Started.IsZero() {
		return false
	}
	end := r.Finished
	if end.IsZero() {
		end = time.Now()
	}
	return at >= r.Started.Unix()-1 && at <= end.Unix()+1
}

// daemonState reads the agent daemon's pidfile: running while it names a
// live Puppet process (Puppet's own rule for its pid locks), stopped when
// it is missing or stale, "" when it cannot be read.
func daemonState(pidfile string) string {
	b, err := os.ReadFile(pidfile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return protocol.DaemonStopped
	case err != nil:
		return ""
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err == nil && pid > 0 && puppetProcess(pid) {
		return protocol.DaemonRunning
	}
	return protocol.DaemonStopped
}

// figuresLeftOut is the reason an answer gives for Puppet's figures
// when they would not fit in it.
const figuresLeftOut = "left out: answer too large"

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// encodeStatus encodes a status answer under serf's limit, shortening the
// free texts in msgs and Puppet's error and code version. Should it fit
// only with a text cut to nothing (an emptied disabled reason would read
// as enabled) or not at all, Puppet's figures give way to a short reason,
// then to nothing: they must never cost the node its answer or its texts.
func encodeStatus(name string, st *protocol.Status, msgs []*string) ([]byte, error) {
	if st.Puppet == nil {
		return protocol.EncodeAnswer(name, st, msgs...)
	}
	// EncodeAnswer cuts the texts in place.
	saved := make([]string, len(msgs))
	for i, m := range msgs {
		saved[i] = *m
	}
	full := st.Puppet
	for _, ps := range []*protocol.PuppetState{full, {Error: figuresLeftOut}} {
		for i, m := range msgs {
			*m = saved[i]
		}
		st.Puppet = ps
		cut := msgs
		if ps == full {
			cut = append(cut, &ps.Error, &ps.Version)
		}
		b, err := protocol.EncodeAnswer(name, st, cut...)
		emptied := false
		for i, m := range msgs {
			emptied = emptied || saved[i] != "" && *m == ""
		}
		if err == nil && !emptied {
			return b, nil
		}
	}
	for i, m := range msgs {
		*m = saved[i]
	}
	st.Puppet = nil
	return protocol.EncodeAnswer(name, st, msgs...)
}
