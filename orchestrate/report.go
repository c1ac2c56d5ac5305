package orchestrate

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// Report rebuilds a past deploy's result from the logging service alone, so
// that it can be read long after the cluster has moved on, with no serf
// agent at hand. since bounds how far back the records are searched.
func Report(ctx context.Context, log LogReader, id string, since time.Time) (*Result, error) {
	if log == nil {
		return nil, Errorf(ExitUsage, "report needs the logging service: set --log-url or SERFDEPLOY_LOG_URL")
	}
	if err := validID(id); err != nil {
		return nil, err
	}
	records, err := log.Latest(ctx, id, since, time.Now().Add(time.Minute))
	if err != nil {
		return nil, &Error{Code: ExitInfra, Err: fmt.Errorf("the logging service could not be read: %w", err)}
	}
	if len(records) == 0 {
		return nil, Errorf(ExitNoTargets, "the logging service has no record of deploy %s since %s; check the id, or search further back with --since", id, since.Format(time.RFC3339))
	}
	res := &Result{ID: id, Kind: "report", StatusSource: "the logging service"}
	nodes := make([]string, 0, len(records))
	for n := range records {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, name := range nodes {
		rec := records[name]
		n := NodeResult{Node: name, State: StateRunning, Source: "log"}
		if rec.Event == protocol.LogFinished {
			applyRecord(&n, rec)
		} else {
			n.Message = "started at " + rec.Time.Format(time.RFC3339) + "; no finished record"
		}
		n.Changes = []Change{{At: rec.Time, State: n.State}}
		if res.Module == "" {
			res.Module, res.Ref, res.Environment = rec.Module, rec.Ref, rec.Environment
		}
		if res.Build == nil && (rec.BuildTag != "" || rec.BuildURL != "" || rec.JobName != "") {
			res.Build = buildOf(rec.BuildTag, rec.BuildURL, rec.JobName)
		}
		if res.Started.IsZero() || rec.Time.Before(res.Started) {
			res.Started = rec.Time
		}
		if rec.Time.After(res.Finished) {
			res.Finished = rec.Time
		}
		res.Nodes = append(res.Nodes, n)
	}
	res.ExitCode = decideExit(res.Nodes)
	res.Outcome = outcome(res.Nodes, res.ExitCode)
	return res, nil
}

func validID(id string) error {
	if err := protocol.ValidID(id); err != nil {
		return &Error{Code: ExitUsage, Err: err}
	}
	return nil
}

func buildOf(tag, url, job string) *protocol.Build {
	return &protocol.Build{Tag: tag, URL: url, Job: job}
}
