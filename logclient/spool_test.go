package logclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
	"github.com/serfdeploy/serfdeploy/testkit/loki"
)

// fakeLoki is a push endpoint that answers each push with status(records)
// and notes every push.
type fakeLoki struct {
	status func([]protocol.RunRecord) int

	mu     sync.Mutex
	pushes [][]protocol.RunRecord // every push, taken or not
	lines  []int                  // bytes of log lines in each push
	took   []protocol.RunRecord   // records of the pushes answered 2xx
}

func newFakeLoki(t *testing.T, status func([]protocol.RunRecord) int) (*fakeLoki, *Client) {
	t.Helper()
	f := &fakeLoki{status: status}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Streams []struct{ Values [][2]string } `json:"streams"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("push body: %v", err)
		}
		var recs []protocol.RunRecord
		size := 0
		for _, s := range body.Streams {
			for _, v := range s.Values {
				var rec protocol.RunRecord
				if err := json.Unmarshal([]byte(v[1]), &rec); err != nil {
					t.Errorf("line %q: %v", v[1], err)
				}
				recs = append(recs, rec)
				size += len(v[1])
			}
		}
		code := f.status(recs)
		f.mu.Lock()
		f.pushes = append(f.pushes, recs)
		f.lines = append(f.lines, size)
		if code/100 == 2 {
			f.took = append(f.took, recs...)
		}
		f.mu.Unlock()
		w.WriteHeader(code)
		if code == http.StatusBadRequest {
			// Loki's words for a record older than its ingestion window.
			io.WriteString(w, "entry with timestamp ignored, reason: 'entry too far behind'")
		}
	}))
	t.Cleanup(srv.Close)
	return f, testClient(t, srv.URL, Config{Retries: -1})
}

// pushCount is how many pushes the service got.
func (f *fakeLoki) pushCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pushes)
}

// snapshot maps each file under dir to its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ".lock" {
			return err
		}
		b, err := os.ReadFile(path)
		out[strings.TrimPrefix(path, dir)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func addRecords(t *testing.T, s Spool, n int, rec func(i int) protocol.RunRecord) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := s.Add(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
}

// Records older than Loki's window are refused with 400 for good: they are
// moved to rejected/ and the others are delivered, in order.
func TestSpoolSetsAsideRefusedRecords(t *testing.T) {
	now := time.Now()
	tooOld := now.Add(-2 * time.Hour)
	fake, c := newFakeLoki(t, func(recs []protocol.RunRecord) int {
		for _, r := range recs {
			if r.Time.Before(now.Add(-time.Hour)) {
				return http.StatusBadRequest
			}
		}
		return http.StatusNoContent
	})
	s := Spool{Dir: t.TempDir()}
	old := map[int]bool{2: true, 5: true, 9: true}
	addRecords(t, s, 10, func(i int) protocol.RunRecord {
		r := protocol.RunRecord{Event: "finished", DeployID: "d", Node: fmt.Sprint("n", i), Time: now}
		if old[i] {
			r.Time = tooOld
		}
		return r
	})

	n, err := s.Flush(context.Background(), c)
	if err != nil || n != 7 {
		t.Fatalf("flush: sent %d, %v; want 7, nil", n, err)
	}
	var nodes []string
	for _, r := range fake.took {
		nodes = append(nodes, r.Node)
	}
	if got := strings.Join(nodes, " "); got != "n0 n1 n3 n4 n6 n7 n8" {
		t.Fatalf("delivered %s", got)
	}
	if p, _ := s.Pending(); p != 0 {
		t.Fatalf("%d still pending", p)
	}
	if r, err := s.Rejected(); r != 3 || err != nil {
		t.Fatalf("rejected: %d %v, want 3", r, err)
	}
	names, _ := files(filepath.Join(s.Dir, rejectedDir))
	for i, name := range names {
		b, _ := os.ReadFile(filepath.Join(s.Dir, rejectedDir, name))
		var r protocol.RunRecord
		if err := json.Unmarshal(b, &r); err != nil || !r.Time.Equal(tooOld) || r.Node != []string{"n2", "n5", "n9"}[i] {
			t.Fatalf("rejected/%s: %s (%v)", name, b, err)
		}
	}
	pushes := fake.pushCount()
	t.Logf("10 records, 3 too old: %d pushes (1 batch, then 10 one at a time), 7 delivered, 3 set aside, spool empty", pushes)

	if n, err := s.Flush(context.Background(), c); n != 0 || err != nil || fake.pushCount() != pushes {
		t.Fatalf("second flush: sent %d, %v, %d more pushes; want nothing", n, err, fake.pushCount()-pushes)
	}
}

// A failure that is not about the records (5xx, 429, no answer) stops the
// flush at the batch that failed: nothing is removed or set aside.
func TestSpoolTransientErrorKeepsRecords(t *testing.T) {
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusTooManyRequests} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			fake, c := newFakeLoki(t, func([]protocol.RunRecord) int { return code })
			s := Spool{Dir: t.TempDir()}
			addRecords(t, s, 250, func(i int) protocol.RunRecord { return protocol.RunRecord{DeployID: "d", Node: fmt.Sprint("n", i)} })
			before := snapshot(t, s.Dir)

			n, err := s.Flush(context.Background(), c)
			if n != 0 || !errors.Is(err, ErrBadResponse) || refused(err) {
				t.Fatalf("flush: sent %d, %v", n, err)
			}
			var sizes []int
			for _, p := range fake.pushes {
				sizes = append(sizes, len(p))
			}
			if fmt.Sprint(sizes) != fmt.Sprintf("[%d]", batchRecords) {
				t.Fatalf("pushes of %v records; want one of %d, then stop", sizes, batchRecords)
			}
			after := snapshot(t, s.Dir)
			if len(after) != 250 || fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("spool changed: %d files before, %d after", len(before), len(after))
			}
			if r, _ := s.Rejected(); r != 0 {
				t.Fatalf("%d set aside", r)
			}
		})
	}

	// The batches taken before the failure stay taken.
	var pushes int
	var mu sync.Mutex
	_, c := newFakeLoki(t, func([]protocol.RunRecord) int {
		mu.Lock()
		defer mu.Unlock()
		pushes++
		if pushes > 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	s := Spool{Dir: t.TempDir()}
	addRecords(t, s, 250, func(i int) protocol.RunRecord {
		return protocol.RunRecord{DeployID: "d", Node: fmt.Sprintf("n%03d", i)}
	})
	n, err := s.Flush(context.Background(), c)
	if n != 200 || !errors.Is(err, ErrBadResponse) {
		t.Fatalf("503 after two batches: sent %d, %v; want 200 and the error", n, err)
	}
	names, _ := files(s.Dir)
	b, _ := os.ReadFile(filepath.Join(s.Dir, names[0]))
	var first protocol.RunRecord
	json.Unmarshal(b, &first)
	if len(names) != 50 || first.Node != "n200" {
		t.Fatalf("%d left, oldest %s; want 50 from n200", len(names), first.Node)
	}

	// No answer at all.
	dead := testClient(t, "http://127.0.0.1:1", Config{Retries: -1})
	before := snapshot(t, s.Dir)
	if n, err := s.Flush(context.Background(), dead); n != 0 || !errors.Is(err, ErrUnreachable) {
		t.Fatalf("unreachable: sent %d, %v", n, err)
	}
	if fmt.Sprint(snapshot(t, s.Dir)) != fmt.Sprint(before) {
		t.Fatal("spool changed after an unreachable service")
	}
}

// A long backlog goes in pushes of at most batchRecords records and
// batchBytes bytes, oldest first, each record once.
func TestSpoolBoundedBatches(t *testing.T) {
	fake, c := newFakeLoki(t, func([]protocol.RunRecord) int { return http.StatusNoContent })
	s := Spool{Dir: t.TempDir()}
	addRecords(t, s, 1000, func(i int) protocol.RunRecord {
		return protocol.RunRecord{DeployID: "d", Node: fmt.Sprintf("n%04d", i)}
	})
	n, err := s.Flush(context.Background(), c)
	if n != 1000 || err != nil {
		t.Fatalf("flush: sent %d, %v", n, err)
	}
	if fake.pushCount() != 10 {
		t.Fatalf("%d pushes, want 10", fake.pushCount())
	}
	for i, p := range fake.pushes {
		if len(p) != batchRecords {
			t.Fatalf("push %d holds %d records", i, len(p))
		}
	}
	for i, r := range fake.took {
		if r.Node != fmt.Sprintf("n%04d", i) {
			t.Fatalf("record %d is %s: order or count wrong", i, r.Node)
		}
	}
	if p, _ := s.Pending(); p != 0 {
		t.Fatalf("%d pending", p)
	}
	t.Logf("1000 records in %d pushes of %d", fake.pushCount(), len(fake.pushes[0]))

	// Large records: the byte bound cuts the batches; a record larger than
	// the bound goes alone.
	fake, c = newFakeLoki(t, func([]protocol.RunRecord) int { return http.StatusNoContent })
	s = Spool{Dir: t.TempDir()}
	addRecords(t, s, 100, func(i int) protocol.RunRecord {
		r := protocol.RunRecord{DeployID: "d", Node: fmt.Sprint("n", i), Outcome: protocol.Outcome{Message: strings.Repeat("m", maxMessage)}}
		for j := 0; j < maxResources; j++ {
			r.FailedResources = append(r.FailedResources, protocol.FailedResource{Resource: fmt.Sprintf("Exec[%d]", j), Message: strings.Repeat("e", maxMessage/4)})
		}
		if i == 50 {
			r.Reason = strings.Repeat("r", 2*batchBytes)
		}
		return r
	})
	if n, err := s.Flush(context.Background(), c); n != 100 || err != nil {
		t.Fatalf("flush of large records: sent %d, %v", n, err)
	}
	var sizes []string
	for i, p := range fake.pushes {
		alone := len(p) == 1 && len(p[0].Reason) > batchBytes
		if fake.lines[i] > batchBytes && !alone {
			t.Fatalf("push %d: %d records, %d bytes of lines", i, len(p), fake.lines[i])
		}
		sizes = append(sizes, fmt.Sprintf("%d (%d KiB)", len(p), fake.lines[i]>>10))
	}
	if fake.pushCount() < 4 || len(fake.took) != 100 {
		t.Fatalf("%d pushes, %d records", fake.pushCount(), len(fake.took))
	}
	t.Logf("99 records of ~25 KiB and one of 2 MiB: pushes %s", strings.Join(sizes, ", "))
}

// rejected/ keeps only the newest maxRejected records.
func TestSpoolRejectedIsBounded(t *testing.T) {
	_, c := newFakeLoki(t, func([]protocol.RunRecord) int { return http.StatusBadRequest })
	s := Spool{Dir: t.TempDir()}
	dir := filepath.Join(s.Dir, rejectedDir)
	os.MkdirAll(dir, 0o755)
	for i := 0; i < maxRejected; i++ {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d-old%s", i, spoolSuffix)), []byte("{}"), 0o644)
	}
	addRecords(t, s, 3, func(i int) protocol.RunRecord { return protocol.RunRecord{DeployID: "d", Node: fmt.Sprint("n", i)} })
	if n, err := s.Flush(context.Background(), c); n != 0 || err != nil {
		t.Fatalf("flush: sent %d, %v", n, err)
	}
	if r, _ := s.Rejected(); r != maxRejected {
		t.Fatalf("%d kept, want %d", r, maxRejected)
	}
	for i := 0; i < 3; i++ {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%020d-old%s", i, spoolSuffix))); !os.IsNotExist(err) {
			t.Fatalf("oldest set-aside record %d still there", i)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%020d-old%s", 3, spoolSuffix))); err != nil {
		t.Fatal("fourth oldest removed too")
	}
	if p, _ := s.Pending(); p != 0 {
		t.Fatalf("%d pending", p)
	}
}

// Against a real Loki: once a node's stream holds a fresh line, Loki
// refuses a line more than an hour older ("entry too far behind"; the test
// config has reject_old_samples off, so this is the age limit it applies).
// The old record is set aside, the fresh one sent with it is queryable.
func TestSpoolRealLokiSetsAsideOldRecord(t *testing.T) {
	lk := loki.Start(t) // fails, saying how to build it, if the binary is missing
	c := testClient(t, lk.URL, Config{})
	ctx := context.Background()
	now := time.Now()
	rec := func(id string, at time.Time) protocol.RunRecord {
		return protocol.RunRecord{Event: "finished", DeployID: id, Node: "agent-01", Environment: "production", Phase: "succeeded", Time: at}
	}
	if err := c.Push(ctx, rec("deploy-now", now)); err != nil {
		t.Fatal(err)
	}
	s := Spool{Dir: t.TempDir()}
	big := rec("deploy-big", now.Add(2*time.Second))
	big.Reason = strings.Repeat("x", 300<<10) // over Loki's 256 KiB line limit
	for _, r := range []protocol.RunRecord{rec("deploy-old", now.Add(-3*time.Hour)), rec("deploy-fresh", now.Add(time.Second)), big} {
		if err := s.Add(r); err != nil {
			t.Fatal(err)
		}
	}

	n, err := s.Flush(ctx, c)
	if n != 1 || err != nil {
		t.Fatalf("flush: sent %d, %v; want 1, nil", n, err)
	}
	p, _ := s.Pending()
	r, _ := s.Rejected()
	if p != 0 || r != 2 {
		t.Fatalf("%d pending, %d set aside; want 0 and 2 (too old, too large)", p, r)
	}
	names, _ := files(filepath.Join(s.Dir, rejectedDir))
	var ids []string
	for _, name := range names {
		var r protocol.RunRecord
		b, _ := os.ReadFile(filepath.Join(s.Dir, rejectedDir, name))
		json.Unmarshal(b, &r)
		ids = append(ids, r.DeployID)
	}
	if strings.Join(ids, " ") != "deploy-old deploy-big" {
		t.Fatalf("set aside: %v", ids)
	}
	eventuallyCount(t, "fresh record queryable", 1, func() (int, error) {
		got, err := c.Records(ctx, "deploy-fresh", now.Add(-time.Minute), now.Add(time.Minute))
		return len(got), err
	})
	if got, err := c.Records(ctx, "deploy-old", now.Add(-4*time.Hour), now.Add(time.Minute)); err != nil || len(got) != 0 {
		t.Fatalf("old record in Loki: %v %v", got, err)
	}
	t.Logf("real Loki: 1 sent, 2 set aside (entry too far behind, max entry size), spool empty")
}
