package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/testkit/deployrig"
)

// slowLoki answers query_range as Loki does with no records. Once armed
// (from the start for the pre-flight read, when the node's run has ended
// for the final read), reads are counted: read number hangAt waits until
// the test ends, and stall holds every counted answer after the first
// that long. reads receives the number of each counted read.
type slowLoki struct {
	hangAt int
	stall  time.Duration
	reads  chan int
	done   chan struct{}
	mu     sync.Mutex
	armed  bool
	n      int
}

func (l *slowLoki) arm() {
	l.mu.Lock()
	l.armed = true
	l.mu.Unlock()
}

func (l *slowLoki) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.mu.Lock()
	n := 0
	if l.armed {
		l.n++
		n = l.n
	}
	l.mu.Unlock()
	if n > 0 {
		select {
		case l.reads <- n:
		default:
		}
	}
	if n > 0 && n == l.hangAt {
		select {
		case <-l.done:
		case <-r.Context().Done():
		}
		return
	}
	if n > 1 {
		time.Sleep(l.stall)
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"status":"success","data":{"resultType":"streams","result":[]}}`)
}

// TestJenkinsAbortsAreExit4: a SIGTERM (Jenkins abort) while the CLI
// reads the logging service, before firing or at the end, is exit 4 in the
// process and in --result-file. Before, both ended exit 5 ("the logging
// service ... cannot be read"), the final read's about one time in four.
func TestJenkinsAbortsAreExit4(t *testing.T) {
	f := qaRig(t, deployrig.Options{})
	cases := []struct {
		name   string
		loki   *slowLoki
		signal func(reads <-chan int) // returns when the SIGTERM is due
	}{
		{"pre-flight read in flight", &slowLoki{hangAt: 1, armed: true}, atRead(1, 100*time.Millisecond)},
		{"first final read in flight", &slowLoki{hangAt: 1}, atRead(1, 100*time.Millisecond)},
		{"first final read just sent", &slowLoki{hangAt: 1}, atRead(1, 0)},
		{"between final reads", &slowLoki{}, atRead(1, 400*time.Millisecond)},
		{"second final read in flight", &slowLoki{hangAt: 2}, atRead(2, 200*time.Millisecond)},
		{"final read answering slowly", &slowLoki{stall: time.Second}, atRead(2, 500*time.Millisecond)},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.loki.reads, c.loki.done = make(chan int, 16), make(chan struct{})
			srv := httptest.NewServer(c.loki)
			defer srv.Close()
			defer close(c.loki.done)
			id := fmt.Sprintf("abort-%d", i)
			resultFile := filepath.Join(t.TempDir(), "result.json")
			cmd := exec.Command(bin, deployArgs("--ref", "v1", "--node", "agent-01", "--id", id,
				"--log-wait", "20s", "--result-file", resultFile)...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SERF_RPC_ADDR=" + f.Cluster.Node("master-01").RPCAddr,
				"SERFDEPLOY_LOG_URL=" + srv.URL, "NO_COLOR=1"}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if !c.loki.armed {
				waitFor(t, time.Minute, func() bool { return runEnded(f, "agent-01", id) })
				c.loki.arm()
			}
			c.signal(c.loki.reads)
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
			code := cmd.ProcessState.ExitCode()
			var res orchestrate.Result
			b, err := os.ReadFile(resultFile)
			if err == nil {
				err = json.Unmarshal(b, &res)
			}
			if code != orchestrate.ExitIncomplete || err != nil || res.ExitCode != code || !strings.Contains(stderr.String(), "interrupted") {
				t.Fatalf("exit %d, result file exit_code %d (%v), want 4 in both\n%s", code, res.ExitCode, err, stderr.String())
			}
			if i > 0 && !strings.Contains(stderr.String(), "serfdeploy watch "+id) {
				t.Fatalf("after firing, the line must say how to re-attach:\n%s", stderr.String())
			}
		})
	}
}

// atRead waits for read number n to arrive, then for after.
func atRead(n int, after time.Duration) func(<-chan int) {
	return func(reads <-chan int) {
		timeout := time.After(3 * time.Minute)
		for {
			select {
			case got := <-reads:
				if got >= n {
					time.Sleep(after)
					return
				}
			case <-timeout:
				return // the SIGTERM then lands wherever the CLI is; the checks say what it did
			}
		}
	}
}

// runEnded says whether node's record of id says its run has ended.
func runEnded(f *deployrig.Rig, node, id string) bool {
	var rec struct{ Finished time.Time }
	b, err := os.ReadFile(filepath.Join(f.StateDir(node), "runs", id, "run.json"))
	return err == nil && json.Unmarshal(b, &rec) == nil && !rec.Finished.IsZero()
}
