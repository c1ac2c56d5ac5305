package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
	"github.com/serfdeploy/serfdeploy/testkit/loki"
)

// withPassword puts user ci and password into an http:// URL.
func withPassword(rawURL, password string) string {
	return strings.Replace(rawURL, "http://", "http://ci:"+password+"@", 1)
}

// echoingLoki answers the first query_range like an empty Loki, so that a
// deploy starts, and every later request with 502 and an echo of what it
// was sent, credentials included, as a debugging proxy might.
func echoingLoki(t *testing.T) *httptest.Server {
	var queries atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/loki/api/v1/query_range" && queries.Add(1) == 1 {
			io.WriteString(w, `{"status":"success","data":{"resultType":"streams","result":[]}}`)
			return
		}
		user, pass, _ := r.BasicAuth()
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "upstream gone; you sent %s:%s (%s) for %s", user, pass, r.Header.Get("Authorization"), r.URL)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestLogURLPasswordInNoOutput: a logging service URL with a password
// (http://ci:s3cret@host:3100) that is unreachable, answers garbage, or
// fails after the runs, shows its password in no message and no report:
// not on stderr or stdout, in the --result-file JSON, the --junit XML or
// the --summary-file. The URL is still named, password masked, and the
// exit code is the logging service's (5).
func TestLogURLPasswordInNoOutput(t *testing.T) {
	const password = "s3cret"
	secrets := []string{password, base64.StdEncoding.EncodeToString([]byte("ci:" + password))}
	f := qaRig(t, deployrig.Options{})
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html><body>Please log in to the hotel wifi</body></html>")
	}))
	defer garbage.Close()

	cases := []struct {
		name string
		url  func() string // a new service for each deploy
		says string
		ran  bool // the runs happen, the result has the nodes
	}{
		{"unreachable", func() string { return "http://" + deadAddr(t) }, "logging service unreachable at http://ci:xxxxx@", false},
		{"garbage", func() string { return garbage.URL }, "logging service gave an unexpected answer at http://ci:xxxxx@", false},
		{"fails after the runs", func() string { return echoingLoki(t).URL }, "logging service gave an unexpected answer at http://ci:xxxxx@", true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logURL string
			for _, format := range []string{"text", "json"} {
				logURL = withPassword(tc.url(), password)
				dir := t.TempDir()
				files := []string{filepath.Join(dir, "r.json"), filepath.Join(dir, "j.xml"), filepath.Join(dir, "s.md")}
				r := f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", fmt.Sprintf("redact-%d-%s", i, format),
					"--log-url", logURL, "--log-wait", "5s", "--format", format,
					"--result-file", files[0], "--junit", files[1], "--summary-file", files[2])...)
				if r.Code != orchestrate.ExitInfra || !strings.Contains(r.Stderr, tc.says) {
					t.Fatalf("%s: want exit %d and %q on stderr: %s", format, orchestrate.ExitInfra, tc.says, r)
				}
				outputs := map[string]string{"stdout": r.Stdout, "stderr": r.Stderr}
				for _, path := range files {
					b, err := os.ReadFile(path)
					if err != nil && path != files[2] {
						// A deploy stopped before it started writes no summary.
						t.Fatalf("%s: %v", format, err)
					}
					outputs[filepath.Base(path)] = string(b)
				}
				var res orchestrate.Result
				if err := json.Unmarshal([]byte(outputs["r.json"]), &res); err != nil || res.ExitCode != orchestrate.ExitInfra || !strings.Contains(res.Outcome, "ci:xxxxx@") {
					t.Fatalf("%s: result file %v: %s", format, err, outputs["r.json"])
				}
				if tc.ran != (len(res.Nodes) == 2) {
					t.Fatalf("%s: %d nodes in the result", format, len(res.Nodes))
				}
				for name, out := range outputs {
					for _, secret := range secrets {
						if strings.Contains(out, secret) {
							t.Errorf("%s: %s shows %q:\n%s", format, name, secret, out)
						}
					}
				}
			}
			rep := deployrig.Run(t, bin, []string{"SERFDEPLOY_LOG_URL=" + logURL}, "report", "redact-2-text")
			if rep.Code != orchestrate.ExitInfra || strings.Contains(rep.Stdout+rep.Stderr, password) {
				t.Fatalf("report: %s", rep)
			}
		})
	}
}

// switchable is the nodes' logging URL: it answers every push 200 with a
// page that is not Loki's until it is switched to pass everything on to
// the real Loki. It notes the records it answered with garbage.
type switchable struct {
	mu       sync.Mutex
	real     bool
	swallows map[string]bool // "node event" pushed while answering garbage
	proxy    *httputil.ReverseProxy
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	real := s.real
	s.mu.Unlock()
	if real {
		s.proxy.ServeHTTP(w, r)
		return
	}
	var body struct {
		Streams []struct{ Values [][2]string } `json:"streams"`
	}
	json.NewDecoder(r.Body).Decode(&body)
	s.mu.Lock()
	for _, st := range body.Streams {
		for _, v := range st.Values {
			var rec protocol.RunRecord
			if json.Unmarshal([]byte(v[1]), &rec) == nil {
				s.swallows[rec.Node+" "+rec.Event] = true
			}
		}
	}
	s.mu.Unlock()
	io.WriteString(w, "<html><body>Please log in to the hotel wifi</body></html>")
}

func (s *switchable) swallowed(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.swallows[key]
}

// TestGarbageAnswerKeepsRecordsInSpool: while the nodes' logging URL
// answers pushes 200 with a page that is not Loki's, their records stay
// in their spools; once the URL leads to Loki the records arrive and
// `serfdeploy report` finds them.
func TestGarbageAnswerKeepsRecordsInSpool(t *testing.T) {
	lk := loki.Start(t)
	target, err := url.Parse(lk.URL)
	if err != nil {
		t.Fatal(err)
	}
	sw := &switchable{swallows: map[string]bool{}, proxy: httputil.NewSingleHostReverseProxy(target)}
	front := httptest.NewServer(sw)
	defer front.Close()
	f := qaRig(t, deployrig.Options{LogURL: front.URL})

	// Without --log-url the CLI takes the nodes' own answers.
	r := f.CLI(nil, deployArgs("--ref", "v1", "--tag", "segment=qa", "--id", "garbage-1")...)
	if r.Code != 0 {
		t.Fatalf("deploy: %s", r)
	}
	eventually(t, "both finished records pushed to the garbage page", func() bool {
		return sw.swallowed("agent-01 finished") && sw.swallowed("agent-02 finished")
	})
	for _, node := range []string{"agent-01", "agent-02"} {
		spool, _ := filepath.Glob(filepath.Join(f.StateDir(node), "spool", "*.json"))
		if len(spool) == 0 {
			t.Fatalf("%s: the spool is empty after a 200 that was not Loki's: the records are lost", node)
		}
		// The line comes just after the answer the page gave.
		eventually(t, node+"'s log line saying why the records stay", func() bool {
			logs := nodeLogs(t, f.StateDir(node))
			return strings.Contains(logs, "not Loki's 204 No Content") && strings.Contains(logs, "(kept in the spool)")
		})
	}
	logEnv := []string{"SERFDEPLOY_LOG_URL=" + lk.URL}
	if rep := deployrig.Run(t, bin, logEnv, "report", "garbage-1"); rep.Code != orchestrate.ExitNoTargets {
		t.Fatalf("report before the records reached Loki: %s", rep)
	}

	sw.mu.Lock()
	sw.real = true
	sw.mu.Unlock()
	switched := time.Now()
	var rep deployrig.Result
	eventually(t, "the spooled records in Loki", func() bool {
		rep = deployrig.Run(t, bin, logEnv, "report", "garbage-1", "--format", "json")
		var res orchestrate.Result
		json.Unmarshal([]byte(rep.Stdout), &res)
		got := states(res)
		return rep.Code == 0 && got["agent-01"] == "finished" && got["agent-02"] == "finished"
	})
	t.Logf("report found both records %s after the URL led to Loki", time.Since(switched).Round(time.Millisecond))
	for _, node := range []string{"agent-01", "agent-02"} {
		if spool, _ := filepath.Glob(filepath.Join(f.StateDir(node), "spool", "*.json")); len(spool) != 0 {
			t.Errorf("%s: %d records still spooled after Loki took them", node, len(spool))
		}
	}
}

// nodeLogs is every log file of a node's state directory, run logs and
// handler.log alike.
func nodeLogs(t *testing.T, dir string) string {
	t.Helper()
	var all strings.Builder
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".log") {
			b, err := os.ReadFile(path)
			all.Write(b)
			return err
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all.String()
}

// eventually polls ok until it holds, for at most three minutes: the
// nodes' spool flush retries for two.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Second)
	}
}
