package logclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// FailedResource is a resource Puppet could not apply, with its error.
type FailedResource struct {
	Resource string `json:"resource"`
	Message  string `json:"message"`
}

// Record is one line in the logging service: a run started or finished.
type Record struct {
	Event           string           `json:"event"` // "started" or "finished"
	DeployID        string           `json:"deploy_id"`
	Node            string           `json:"node"`
	Environment     string           `json:"environment"`
	Module          string           `json:"module,omitempty"`
	Ref             string           `json:"ref,omitempty"`
	Phase           string           `json:"phase"`
	Reason          string           `json:"reason,omitempty"`
	Message         string           `json:"message,omitempty"`
	ExitCode        *int             `json:"exit_code,omitempty"`
	Changed         int              `json:"changed"`
	Failed          int              `json:"failed"`
	Total           int              `json:"total"`
	DurationSec     float64          `json:"duration_sec"`
	ConfigVersion   string           `json:"config_version,omitempty"`
	FailedResources []FailedResource `json:"failed_resources,omitempty"`
	BuildTag        string           `json:"build_tag,omitempty"`
	BuildURL        string           `json:"build_url,omitempty"`
	JobName         string           `json:"job_name,omitempty"`
	Time            time.Time        `json:"time"`
}

// Records are one push's worth; they stay small so that a failed run's
// report is never refused for size.
const (
	maxMessage   = 4000
	maxResources = 20
)

func (r Record) bounded() Record {
	if len(r.Message) > maxMessage {
		r.Message = r.Message[:maxMessage]
	}
	if len(r.FailedResources) > maxResources {
		r.FailedResources = r.FailedResources[:maxResources]
	}
	for i := range r.FailedResources {
		if len(r.FailedResources[i].Message) > maxMessage/4 {
			r.FailedResources[i].Message = r.FailedResources[i].Message[:maxMessage/4]
		}
	}
	return r
}

type pushStream struct {
	Stream map[string]string `json:"stream"`
	Values [][2]string       `json:"values"`
}

// Push sends records in one request. Labels stay low-cardinality (job,
// environment, node); the deploy id and results live in the JSON line.
func (c *Client) Push(ctx context.Context, recs ...Record) error {
	if len(recs) == 0 {
		return nil
	}
	streams := map[string]*pushStream{}
	var order []string
	for _, r := range recs {
		r = r.bounded()
		if r.Time.IsZero() {
			r.Time = time.Now()
		}
		env := r.Environment
		if env == "" {
			env = "none"
		}
		key := env + "\x00" + r.Node
		s, ok := streams[key]
		if !ok {
			s = &pushStream{Stream: map[string]string{"job": c.cfg.Job, "environment": env, "node": r.Node}}
			streams[key] = s
			order = append(order, key)
		}
		s.Values = append(s.Values, [2]string{nsString(r.Time), string(marshal(r))})
	}
	body := struct {
		Streams []*pushStream `json:"streams"`
	}{}
	for _, k := range order {
		body.Streams = append(body.Streams, streams[k])
	}
	_, err := c.do(ctx, http.MethodPost, "/loki/api/v1/push", nil, marshal(body))
	if err != nil {
		return fmt.Errorf("pushing %d record(s): %w", len(recs), err)
	}
	return nil
}

// pageSize is the most lines one query_range returns.
const pageSize = 5000

type queryResponse struct {
	Status string `json:"status"`
	Data   struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Stream map[string]string `json:"stream"`
			Values [][2]string       `json:"values"`
		} `json:"result"`
	} `json:"data"`
}

// Records returns every record of a deploy between since and until, oldest
// first. Lines that are not records are skipped.
func (c *Client) Records(ctx context.Context, deployID string, since, until time.Time) ([]Record, error) {
	q := fmt.Sprintf(`{job=%s} | json | deploy_id=%s`, strconv.Quote(c.cfg.Job), strconv.Quote(deployID))
	var out []Record
	start := since
	for {
		params := url.Values{
			"query": {q}, "start": {nsString(start)}, "end": {nsString(until)},
			"limit": {strconv.Itoa(pageSize)}, "direction": {"forward"},
		}
		body, err := c.do(ctx, http.MethodGet, "/loki/api/v1/query_range", params, nil)
		if err != nil {
			return nil, fmt.Errorf("reading deploy %s: %w", deployID, err)
		}
		var resp queryResponse
		if err := json.Unmarshal(body, &resp); err != nil || resp.Status != "success" {
			return nil, fmt.Errorf("%w at %s: query_range answer is not Loki's JSON: %.120q", ErrBadResponse, c.base, body)
		}
		lines, last := 0, int64(0)
		for _, s := range resp.Data.Result {
			for _, v := range s.Values {
				lines++
				if ts, err := strconv.ParseInt(v[0], 10, 64); err == nil && ts > last {
					last = ts
				}
				var r Record
				if err := json.Unmarshal([]byte(v[1]), &r); err != nil || r.DeployID != deployID {
					continue
				}
				out = append(out, r)
			}
		}
		if lines < pageSize || last == 0 {
			break
		}
		// Next page starts just after the last line seen. Lines sharing
		// that nanosecond across the page boundary are rare enough to accept.
		start = time.Unix(0, last+1)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// Latest returns each node's final word on a deploy: its latest finished
// record if it has one, else its latest started record.
func (c *Client) Latest(ctx context.Context, deployID string, since, until time.Time) (map[string]Record, error) {
	recs, err := c.Records(ctx, deployID, since, until)
	if err != nil {
		return nil, err
	}
	return latest(recs), nil
}

func latest(recs []Record) map[string]Record {
	out := map[string]Record{}
	for _, r := range recs {
		old, ok := out[r.Node]
		switch {
		case !ok:
			out[r.Node] = r
		case old.Event != "finished" && r.Event == "finished":
			out[r.Node] = r
		case old.Event == r.Event && !r.Time.Before(old.Time):
			out[r.Node] = r
		}
	}
	return out
}
