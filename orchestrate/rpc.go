package orchestrate

import (
	"context"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/serfrpc"
)

// RPC is what the workflow needs from serf; *serfrpc.Client implements it,
// and unit tests use a fake.
type RPC interface {
	Members(ctx context.Context, f serfrpc.Filter, status string) ([]serfrpc.Member, error)
	FireEvent(ctx context.Context, name string, payload []byte, coalesce bool) error
	Query(ctx context.Context, q serfrpc.Query) (*serfrpc.QueryResult, error)
}

// LogReader reads final run records from the logging service;
// *logclient.Client implements it.
type LogReader interface {
	Latest(ctx context.Context, deployID string, since, until time.Time) (map[string]protocol.RunRecord, error)
}

// Event is a node's state change, for the progress output.
type Event struct {
	Time   time.Time `json:"time"`
	Node   string    `json:"node"`
	State  string    `json:"state"`
	Detail string    `json:"detail,omitempty"`
	Master bool      `json:"master,omitempty"`
}

// Progress is the count of targets by stage, for a spinner.
type Progress struct {
	Done, Running, Waiting, Total int
}

// Observer receives the watch's events; any field may be nil.
type Observer struct {
	OnEvent    func(Event)
	OnProgress func(Progress)
	OnNote     func(string) // one-line remarks (e.g. no logging service configured)
}

func (o Observer) event(e Event) {
	if o.OnEvent != nil {
		o.OnEvent(e)
	}
}

func (o Observer) progress(p Progress) {
	if o.OnProgress != nil {
		o.OnProgress(p)
	}
}

func (o Observer) note(s string) {
	if o.OnNote != nil {
		o.OnNote(s)
	}
}
