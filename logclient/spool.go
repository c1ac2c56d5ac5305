package logclient

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/serfdeploy/serfdeploy/internal/atomicfile"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// Spool is an on-disk queue of records not yet sent: a record is written
// here first, so that a logging service that is down, or a crash, never
// loses it.
type Spool struct {
	Dir string
}

const spoolSuffix = ".json"

const (
	// A push holds at most batchRecords records or batchBytes of them (a
	// larger single record goes alone), so that a long backlog never makes
	// one request Loki would refuse for its size or rate.
	batchRecords = 100
	batchBytes   = 1 << 20

	// rejectedDir keeps the records Loki refused for good, for an operator;
	// only the newest maxRejected stay, so that it cannot fill the disk.
	rejectedDir = "rejected"
	maxRejected = 1000
)

// Add queues one record. The file name starts with the time, so that
// records are sent in the order they were written.
func (s Spool) Add(rec protocol.RunRecord) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := fmt.Sprintf("%020d-%s%s", time.Now().UnixNano(), hex.EncodeToString(suffix), spoolSuffix)
	// Whole or not at all: a flush never reads half a record.
	if err := atomicfile.Write(filepath.Join(s.Dir, name), marshal(rec), 0o600); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// files lists the queued records of dir, oldest first.
func files(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), spoolSuffix) && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Pending counts the queued records.
func (s Spool) Pending() (int, error) {
	names, err := files(s.Dir)
	return len(names), err
}

// Rejected counts the records set aside because Loki refused them for good
// (at most maxRejected are kept).
func (s Spool) Rejected() (int, error) {
	names, err := files(filepath.Join(s.Dir, rejectedDir))
	return len(names), err
}

// Flush sends the queued records, oldest first, in bounded batches, and
// deletes each batch once Loki took it. It returns how many were sent.
// A record Loki refuses for good (too old, too large) is moved to
// rejected/ so that it does not block the queue; any other failure stops
// the flush and leaves the rest for the next one. An exclusive lock keeps
// two flushers (a finished run and the flush worker) from sending a record
// twice. A file that does not parse is moved to bad/.
func (s Spool) Flush(ctx context.Context, c *Client) (int, error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(s.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return 0, fmt.Errorf("spool lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	defer s.trimRejected()

	names, err := files(s.Dir)
	if err != nil {
		return 0, err
	}
	sent := 0
	for len(names) > 0 {
		var batch []spooled
		batch, names = s.nextBatch(names)
		n, err := s.send(ctx, c, batch)
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// spooled is a queued record and its file name.
type spooled struct {
	name string
	rec  protocol.RunRecord
}

// nextBatch reads the oldest of names into a batch of at most batchRecords
// records and batchBytes bytes, and returns the names left.
func (s Spool) nextBatch(names []string) ([]spooled, []string) {
	var batch []spooled
	size := 0
	for len(names) > 0 && len(batch) < batchRecords {
		name := names[0]
		b, err := os.ReadFile(filepath.Join(s.Dir, name))
		if os.IsNotExist(err) {
			names = names[1:]
			continue
		}
		var r protocol.RunRecord
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil {
			s.setAside("bad", name)
			names = names[1:]
			continue
		}
		if len(batch) > 0 && size+len(b) > batchBytes {
			break
		}
		size += len(b)
		batch = append(batch, spooled{name: name, rec: r})
		names = names[1:]
	}
	return batch, names
}

// send pushes a batch and removes its files once Loki took it.
func (s Spool) send(ctx context.Context, c *Client, batch []spooled) (int, error) {
	if len(batch) == 0 {
		return 0, nil
	}
	recs := make([]protocol.RunRecord, len(batch))
	for i, b := range batch {
		recs[i] = b.rec
	}
	err := c.Push(ctx, recs...)
	switch {
	case err == nil:
		for _, b := range batch {
			os.Remove(filepath.Join(s.Dir, b.name))
		}
		return len(batch), nil
	case !refused(err):
		return 0, err
	case len(batch) == 1:
		s.setAside(rejectedDir, batch[0].name)
		return 0, nil
	}
	// Loki refused the batch for one or more of its records: send them one
	// at a time to find which. Loki may have stored the others already; it
	// drops a line it already has, so sending them again is harmless.
	sent := 0
	for i := range batch {
		n, err := s.send(ctx, c, batch[i:i+1])
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// setAside moves a queued file to the subfolder sub, out of the queue.
func (s Spool) setAside(sub, name string) {
	dir := filepath.Join(s.Dir, sub)
	if err := os.MkdirAll(dir, 0o700); err == nil {
		os.Rename(filepath.Join(s.Dir, name), filepath.Join(dir, name))
	}
}

// trimRejected removes the oldest set-aside records beyond maxRejected.
func (s Spool) trimRejected() {
	dir := filepath.Join(s.Dir, rejectedDir)
	names, err := files(dir)
	if err != nil || len(names) <= maxRejected {
		return
	}
	for _, name := range names[:len(names)-maxRejected] {
		os.Remove(filepath.Join(dir, name))
	}
}
