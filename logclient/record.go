package logclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// Records are one push's worth; they stay small so that a failed run's
// report is never refused for size.
const (
	maxMessage   = 4000
	maxResources = 20
)

func bounded(r protocol.RunRecord) protocol.RunRecord {
	if len(r.Message) > maxMessage {
		r.Message = protocol.Truncate(r.Message, maxMessage)
	}
	// A copy: the caller's record keeps its own resources.
	r.FailedResources = append([]protocol.FailedResource(nil), r.FailedResources...)
	if len(r.FailedResources) > maxResources {
		r.FailedResources = r.FailedResources[:maxResources]
	}
	for i := range r.FailedResources {
		if len(r.FailedResources[i].Message) > maxMessage/4 {
			r.FailedResources[i].Message = protocol.Truncate(r.FailedResources[i].Message, maxMessage/4)
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
func (c *Client) Push(ctx context.Context, recs ...protocol.RunRecord) error {
	if len(recs) == 0 {
		return nil
	}
	streams := map[string]*pushStream{}
	var order []string
	for _, r := range recs {
		r = bounded(r)
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
	code, answer, err := c.do(ctx, http.MethodPost, "/loki/api/v1/push", nil, marshal(body))
	if err == nil {
		err = c.pushTaken(code, answer)
	}
	if err != nil {
		return fmt.Errorf("pushing %d record(s): %w", len(recs), err)
	}
	return nil
}

// pushTaken checks that a push's 2xx answer is Loki saying it took the
// records. Loki's distributor answers a push it stored with 204 No Content
// and nothing else; any other 2xx (a proxy's or captive portal's 200 page,
// a stub that swallows everything) did not store them, so the spool must
// keep them. It is not a refusal of the records: they are sent again later.
func (c *Client) pushTaken(code int, body []byte) error {
	if code == http.StatusNoContent {
		return nil
	}
	line, _, _ := strings.Cut(strings.TrimSpace(c.scrub(string(body))), "\n")
	return fmt.Errorf("%w at %s: the push was answered HTTP %d (body %q), not Loki's 204 No Content, so the records are not known to be stored; is that URL Loki's own, with no proxy or login page in front?",
		ErrBadResponse, c.where, code, protocol.OneLine(line, 120))
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
func (c *Client) Records(ctx context.Context, deployID string, since, until time.Time) ([]protocol.RunRecord, error) {
	q := fmt.Sprintf(`{job=%s} | json | deploy_id=%s`, strconv.Quote(c.cfg.Job), strconv.Quote(deployID))
	var out []protocol.RunRecord
	start := since
	for {
		params := url.Values{
			"query": {q}, "start": {nsString(start)}, "end": {nsString(until)},
			"limit": {strconv.Itoa(pageSize)}, "direction": {"forward"},
		}
		_, body, err := c.do(ctx, http.MethodGet, "/loki/api/v1/query_range", params, nil)
		if err != nil {
			return nil, fmt.Errorf("reading deploy %s: %w", deployID, err)
		}
		var resp queryResponse
		if err := json.Unmarshal(body, &resp); err != nil || resp.Status != "success" {
			return nil, fmt.Errorf("%w at %s: query_range answer is not Loki's JSON: %.120q", ErrBadResponse, c.where, c.scrub(string(body)))
		}
		lines, last := 0, int64(0)
		for _, s := range resp.Data.Result {
			for _, v := range s.Values {
				lines++
				if ts, err := strconv.ParseInt(v[0], 10, 64); err == nil && ts > last {
					last = ts
				}
				var r protocol.RunRecord
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
func (c *Client) Latest(ctx context.Context, deployID string, since, until time.Time) (map[string]protocol.RunRecord, error) {
	recs, err := c.Records(ctx, deployID, since, until)
	if err != nil {
		return nil, err
	}
	return latest(recs), nil
}

func latest(recs []protocol.RunRecord) map[string]protocol.RunRecord {
	out := map[string]protocol.RunRecord{}
	for _, r := range recs {
		old, ok := out[r.Node]
		switch {
		case !ok:
			out[r.Node] = r
		case old.Event != protocol.LogFinished && r.Event == protocol.LogFinished:
			out[r.Node] = r
		case old.Event == r.Event && !r.Time.Before(old.Time):
			out[r.Node] = r
		}
	}
	return out
}
