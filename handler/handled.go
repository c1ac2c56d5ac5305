package handler

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// A master handles a deploy id once. Its sync record (runs/<id>/sync.json)
// says so only until runs/ is pruned (the newest 200 are kept, and on a
// node that is also a target its Puppet runs fill runs/ too), but serf
// delivers old user events again: `serf agent -replay`, or a node that
// rejoins with -replay, gets every user event still in serf's event buffer.
// So the ids of handled deploys are also kept apart, in one small file,
// the newest last.
//
// The bound: serf keeps user events for replay in a ring of EventBuffer
// (default 512, serf.DefaultConfig) slots, one per Lamport time of the
// cluster's event clock; an older event is not replayed. Every user event
// takes a new Lamport time, except events sent at the same moment from two
// nodes, which can share one. maxHandled = 4 × 512 deploys is the last
// 512 slots even if every one held four deploys at once. At most 128
// bytes an id, the file stays under 260 KB (about 40 KB with ids of the
// CLI's own form).
const maxHandled = 4 * 512

func (s state) handledPath() string { return filepath.Join(s.dir, "handled-deploys") }

// handled reports whether a deploy id was handled here before, even if its
// record has been pruned since.
func (s state) handled(id string) (bool, error) {
	ids, err := s.handledIDs()
	return slices.Contains(ids, id), err
}

// rememberHandled adds a deploy id to the handled ones, dropping the
// oldest beyond maxHandled. The caller holds the state lock.
func (s state) rememberHandled(id string) error {
	ids, err := s.handledIDs()
	if err != nil {
		return err
	}
	ids = append(ids, id)
	if len(ids) > maxHandled {
		ids = ids[len(ids)-maxHandled:]
	}
	return writeFileAtomic(s.handledPath(), []byte(strings.Join(ids, "\n")+"\n"))
}

// handledIDs reads the handled ids, oldest first. Before the file exists
// (a node upgraded from a version without it), the deploys still in runs/
// are the handled ones.
func (s state) handledIDs() ([]string, error) {
	b, err := os.ReadFile(s.handledPath())
	if err == nil {
		return strings.Fields(string(b)), nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, "runs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type claimed struct {
		id  string
		mod time.Time
	}
	var found []claimed
	for _, e := range entries {
		if info, err := os.Stat(s.recordPath(e.Name(), KindSync) + ".claim"); err == nil {
			found = append(found, claimed{e.Name(), info.ModTime()})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].mod.Before(found[j].mod) })
	ids := make([]string, len(found))
	for i, c := range found {
		ids[i] = c.id
	}
	return ids, nil
}
