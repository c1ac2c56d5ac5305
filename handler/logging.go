package handler

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/serfdeploy/serfdeploy/logclient"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// logClient returns the logging service's client, or nil when none is
// configured.
func (n *Node) logClient() (*logclient.Client, error) {
	l := n.cfg.Logging
	if l.URL == "" {
		return nil, nil
	}
	return logclient.New(logclient.Config{
		URL: l.URL, TenantID: l.TenantID, Username: l.Username, Password: l.Password,
		BearerToken: l.BearerToken, CAFile: l.CAFile, Timeout: l.Timeout, Job: l.Job,
	})
}

// report sends a run's started or finished record (protocol.LogStarted,
// LogFinished). The record goes to
// the spool on disk first, so that a logging service that is down, or a
// crash, never loses it; the spool is sent now and again later.
func (n *Node) report(ctx context.Context, rec *Record, event string) {
	client, err := n.logClient()
	if err != nil {
		n.log.Printf("logging: %v", err)
		return
	}
	if client == nil {
		return
	}
	spool := logclient.Spool{Dir: n.st.spoolDir()}
	if err := spool.Add(n.logRecord(rec, event)); err != nil {
		n.log.Printf("logging: spooling the %s record of %s: %v", event, rec.ID, err)
		return
	}
	if event == protocol.LogStarted {
		// Do not hold up the run for the logging service: the finished
		// record's flush, or a later one, sends this too.
		go n.flush(ctx, client, 30*time.Second)
		return
	}
	n.flush(ctx, client, 2*time.Minute)
}

// flush sends the spool, retrying for up to patience: 1 s, then twice as
// long each time up to 15 s (the backoff library logclient uses too).
func (n *Node) flush(ctx context.Context, client *logclient.Client, patience time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	spool := logclient.Spool{Dir: n.st.spoolDir()}
	policy := backoff.NewExponentialBackOff()
	policy.InitialInterval, policy.Multiplier, policy.RandomizationFactor = time.Second, 2, 0
	policy.MaxInterval, policy.MaxElapsedTime = 15*time.Second, 0 // the context bounds it
	_ = backoff.Retry(func() error {
		sent, err := spool.Flush(ctx, client)
		if err != nil {
			n.log.Printf("logging: %v (kept in the spool)", err)
			return err
		}
		if sent > 0 {
			n.log.Printf("logging: sent %d record(s)", sent)
		}
		if left, _ := spool.Pending(); left > 0 {
			return errRecordsLeft
		}
		return nil
	}, backoff.WithContext(policy, ctx))
}

// errRecordsLeft: a flush that sent what it could while more records
// arrived, or were left, goes again.
var errRecordsLeft = errors.New("records left in the spool")

// flushSpoolLater starts a flush worker when records wait in the spool (the
// logging service was down when they were written). Handlers call it on
// ordinary events, so that a spool empties once the service is back even
// when no new run happens.
func (n *Node) flushSpoolLater() {
	if n.cfg.Logging.URL == "" {
		return
	}
	spool := logclient.Spool{Dir: n.st.spoolDir()}
	if left, err := spool.Pending(); err != nil || left == 0 {
		return
	}
	// At most one flush worker a minute: status queries come every few
	// seconds during a deploy.
	mark := filepath.Join(n.st.dir, "flush-started")
	if info, err := os.Stat(mark); err == nil && time.Since(info.ModTime()) < time.Minute {
		return
	}
	writeFileAtomic(mark, nil)
	if _, err := n.worker(WorkFlush, ""); err != nil {
		n.log.Printf("logging: starting the flush worker: %v", err)
	}
}

func (n *Node) logRecord(rec *Record, event string) protocol.RunRecord {
	r := protocol.RunRecord{
		Event: event, DeployID: rec.ID, Node: n.name, Environment: rec.Environment,
		Module: rec.Module, Ref: rec.Ref, Time: time.Now(),
	}
	if rec.Build != nil {
		r.BuildTag, r.BuildURL, r.JobName = rec.Build.Tag, rec.Build.URL, rec.Build.Job
	}
	if event == protocol.LogFinished {
		r.Phase = rec.Phase
		r.Outcome = rec.Outcome
		if !rec.Started.IsZero() {
			// A run that never started (busy, or stopped while queued)
			// took no time.
			r.DurationSec = rec.Finished.Sub(rec.Started).Seconds()
		}
		r.Time = rec.Finished
	} else {
		r.Phase = rec.Phase
		r.Time = rec.Started
	}
	return r
}
