package logclient

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

func testClient(t *testing.T, url string, cfg Config) *Client {
	t.Helper()
	cfg.URL = url
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.firstDelay = time.Millisecond
	return c
}

func exit(i int) *int { return &i }

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "loki:3100", "ftp://x", "http://"} {
		if _, err := New(Config{URL: u}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
	if _, err := New(Config{URL: "https://loki", CAFile: "/nonexistent"}); err == nil {
		t.Error("missing CA file accepted")
	}
}

func TestPushShapeAndHeaders(t *testing.T) {
	var got struct {
		Streams []struct {
			Stream map[string]string `json:"stream"`
			Values [][2]string       `json:"values"`
		} `json:"streams"`
	}
	var header http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/loki/api/v1/push" || r.Method != http.MethodPost {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		header = r.Header.Clone()
		json.NewDecoder(r.Body).Decode(&got)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c := testClient(t, srv.URL, Config{TenantID: "team-a", Username: "u", Password: "p", Job: "deploys"})
	at := time.Unix(1700000000, 5)
	err := c.Push(context.Background(),
		protocol.RunRecord{Event: "started", DeployID: "d1", Node: "n1", Environment: "production", Time: at},
		protocol.RunRecord{Event: "finished", DeployID: "d1", Node: "n1", Environment: "production", Time: at.Add(time.Second), Outcome: protocol.Outcome{ExitCode: exit(2)}},
		protocol.RunRecord{Event: "finished", DeployID: "d1", Node: "n2", Environment: "production", Time: at, Outcome: protocol.Outcome{Message: strings.Repeat("x", 10000)}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if header.Get("X-Scope-OrgID") != "team-a" || !strings.HasPrefix(header.Get("Authorization"), "Basic ") {
		t.Fatalf("headers %v", header)
	}
	if len(got.Streams) != 2 || len(got.Streams[0].Values) != 2 {
		t.Fatalf("streams %+v", got.Streams)
	}
	labels := got.Streams[0].Stream
	if len(labels) != 3 || labels["job"] != "deploys" || labels["node"] != "n1" || labels["environment"] != "production" {
		t.Fatalf("labels %v: only job, environment and node", labels)
	}
	if got.Streams[0].Values[0][0] != "1700000000000000005" {
		t.Fatalf("timestamp %q", got.Streams[0].Values[0][0])
	}
	var r protocol.RunRecord
	if err := json.Unmarshal([]byte(got.Streams[1].Values[0][1]), &r); err != nil || r.DeployID != "d1" || len(r.Message) > maxMessage {
		t.Fatalf("line %v %d", err, len(r.Message))
	}

	bearer := testClient(t, srv.URL, Config{BearerToken: "tok"})
	if err := bearer.Push(context.Background(), protocol.RunRecord{Node: "n"}); err != nil {
		t.Fatal(err)
	}
	if header.Get("Authorization") != "Bearer tok" {
		t.Fatalf("bearer header %q", header.Get("Authorization"))
	}
}

func TestErrors(t *testing.T) {
	var calls atomic.Int32
	status := []int{}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		mu.Lock()
		code := status[0]
		if len(status) > 1 {
			status = status[1:]
		}
		mu.Unlock()
		w.WriteHeader(code)
		io.WriteString(w, "no\nmore")
	}))
	defer srv.Close()
	set := func(codes ...int) {
		mu.Lock()
		status = codes
		mu.Unlock()
		calls.Store(0)
	}
	c := testClient(t, srv.URL, Config{})
	ctx := context.Background()

	set(401)
	err := c.Push(ctx, protocol.RunRecord{Node: "n"})
	if !errors.Is(err, ErrUnauthorized) || calls.Load() != 1 {
		t.Fatalf("401: %v after %d calls", err, calls.Load())
	}
	set(500, 503, 204)
	if err := c.Push(ctx, protocol.RunRecord{Node: "n"}); err != nil || calls.Load() != 3 {
		t.Fatalf("500, 503, 204: %v after %d calls", err, calls.Load())
	}
	set(400)
	err = c.Push(ctx, protocol.RunRecord{Node: "n"})
	if !errors.Is(err, ErrBadResponse) || calls.Load() != 1 || !strings.Contains(err.Error(), "HTTP 400: no") {
		t.Fatalf("400: %v", err)
	}
	set(500)
	err = c.Push(ctx, protocol.RunRecord{Node: "n"})
	if !errors.Is(err, ErrBadResponse) || calls.Load() != 4 {
		t.Fatalf("500 forever: %v after %d calls, want 1+3 retries", err, calls.Load())
	}

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	c = testClient(t, "http://"+dead, Config{})
	err = c.Ready(ctx)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), dead) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("dead: %v", err)
	}
}

func line(r protocol.RunRecord) string {
	b, _ := json.Marshal(r)
	return string(b)
}

func TestRecordsPagingAndLatest(t *testing.T) {
	base := time.Unix(1700000000, 0)
	var all [][2]string
	for i := 0; i < pageSize+10; i++ {
		all = append(all, [2]string{fmt.Sprint(base.Add(time.Duration(i) * time.Millisecond).UnixNano()),
			line(protocol.RunRecord{Event: "started", DeployID: "d1", Node: fmt.Sprintf("n%d", i%3), Time: base.Add(time.Duration(i) * time.Millisecond)})})
	}
	all = append(all, [2]string{fmt.Sprint(base.Add(time.Hour).UnixNano()), "not json"})
	all = append(all, [2]string{fmt.Sprint(base.Add(time.Hour).UnixNano() + 1), line(protocol.RunRecord{Event: "finished", DeployID: "d1", Node: "n1", Time: base.Add(time.Hour), Outcome: protocol.Outcome{ExitCode: exit(0)}})})
	all = append(all, [2]string{fmt.Sprint(base.Add(time.Hour).UnixNano() + 2), line(protocol.RunRecord{Event: "started", DeployID: "d1", Node: "n1", Time: base.Add(2 * time.Hour)})})
	pages := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pages++
		q := r.URL.Query()
		if !strings.Contains(q.Get("query"), `deploy_id="d1"`) || q.Get("direction") != "forward" {
			t.Errorf("query %v", q)
		}
		var start int64
		fmt.Sscan(q.Get("start"), &start)
		var vals [][2]string
		for _, v := range all {
			var ts int64
			fmt.Sscan(v[0], &ts)
			if ts >= start && len(vals) < pageSize {
				vals = append(vals, v)
			}
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"streams","result":[{"stream":{"job":"serfdeploy"},"values":%s}]}}`, mustJSON(vals))
	}))
	defer srv.Close()
	c := testClient(t, srv.URL, Config{})
	recs, err := c.Records(context.Background(), "d1", base.Add(-time.Minute), base.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != pageSize+12 || pages != 2 {
		t.Fatalf("%d records in %d pages", len(recs), pages)
	}
	latest := latest(recs)
	if latest["n1"].Event != "finished" || latest["n0"].Event != "started" {
		t.Fatalf("latest: finished must beat a later started: %+v", latest["n1"])
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSpool(t *testing.T) {
	var pushed []protocol.RunRecord
	var mu sync.Mutex
	fail := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var body struct {
			Streams []struct{ Values [][2]string } `json:"streams"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		for _, s := range body.Streams {
			for _, v := range s.Values {
				var rec protocol.RunRecord
				json.Unmarshal([]byte(v[1]), &rec)
				pushed = append(pushed, rec)
			}
		}
		time.Sleep(50 * time.Millisecond) // widen the window for a second flusher
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c := testClient(t, srv.URL, Config{Retries: -1})
	s := Spool{Dir: t.TempDir() + "/spool"}
	if n, err := s.Pending(); n != 0 || err != nil {
		t.Fatalf("missing dir: %d %v", n, err)
	}
	for i := 0; i < 3; i++ {
		if err := s.Add(protocol.RunRecord{DeployID: "d", Node: fmt.Sprint("n", i)}); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(s.Dir+"/00000000000000000001-bad.json", []byte("{garbage"), 0o644)
	if _, err := s.Flush(context.Background(), c); err == nil {
		t.Fatal("flush to a failing service succeeded")
	}
	if n, _ := s.Pending(); n != 3 {
		t.Fatalf("after a failed flush %d pending, want 3 (none lost; the corrupt one set aside)", n)
	}
	if _, err := os.Stat(s.Dir + "/bad/00000000000000000001-bad.json"); err != nil {
		t.Fatal("corrupt file not moved aside")
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	var wg sync.WaitGroup
	var sent atomic.Int32
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := s.Flush(context.Background(), c)
			if err != nil {
				t.Error(err)
			}
			sent.Add(int32(n))
		}()
	}
	wg.Wait()
	if sent.Load() != 3 || len(pushed) != 3 {
		t.Fatalf("two flushers sent %d, service got %d: want exactly 3", sent.Load(), len(pushed))
	}
	if pushed[0].Node != "n0" || pushed[2].Node != "n2" {
		t.Fatalf("order %v", pushed)
	}
	if n, _ := s.Pending(); n != 0 {
		t.Fatalf("%d still pending", n)
	}
}

func TestTLSWithCAFile(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	ca := t.TempDir() + "/ca.pem"
	cert := srv.Certificate()
	pemBlock := "-----BEGIN CERTIFICATE-----\n" + base64Lines(cert.Raw) + "-----END CERTIFICATE-----\n"
	if err := os.WriteFile(ca, []byte(pemBlock), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := testClient(t, srv.URL, Config{CAFile: ca}).Ready(context.Background()); err != nil {
		t.Fatalf("with the CA: %v", err)
	}
	err := testClient(t, srv.URL, Config{}).Ready(context.Background())
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v", err)
	}
}

func base64Lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 64 {
		out.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	out.WriteString(s + "\n")
	return out.String()
}
