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
)

// Spool is an on-disk queue of records not yet sent: a record is written
// here first, so that a logging service that is down, or a crash, never
// loses it.
type Spool struct {
	Dir string
}

const spoolSuffix = ".json"

// Add queues one record. The file name starts with the time, so that
// records are sent in the order they were written.
func (s Spool) Add(rec Record) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := fmt.Sprintf("%020d-%s%s", time.Now().UnixNano(), hex.EncodeToString(suffix), spoolSuffix)
	tmp := filepath.Join(s.Dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, marshal(rec), 0o644); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.Dir, name)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

func (s Spool) files() ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
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
	names, err := s.files()
	return len(names), err
}

// Flush sends every queued record in one push and deletes them once Loki
// took them. An exclusive lock keeps two flushers (a finished run and the
// flush worker) from sending a record twice. A file that does not parse is
// moved to bad/ rather than blocking the queue forever.
func (s Spool) Flush(ctx context.Context, c *Client) (int, error) {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(s.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return 0, fmt.Errorf("spool: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return 0, fmt.Errorf("spool lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	names, err := s.files()
	if err != nil || len(names) == 0 {
		return 0, err
	}
	var recs []Record
	var sent []string
	for _, name := range names {
		path := filepath.Join(s.Dir, name)
		b, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			continue
		}
		var r Record
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil {
			s.moveAside(name)
			continue
		}
		recs = append(recs, r)
		sent = append(sent, path)
	}
	if len(recs) == 0 {
		return 0, nil
	}
	if err := c.Push(ctx, recs...); err != nil {
		return 0, err
	}
	for _, p := range sent {
		os.Remove(p)
	}
	return len(recs), nil
}

func (s Spool) moveAside(name string) {
	bad := filepath.Join(s.Dir, "bad")
	if err := os.MkdirAll(bad, 0o755); err == nil {
		os.Rename(filepath.Join(s.Dir, name), filepath.Join(bad, name))
	}
}
