package handler

import (
	"os"
	"path/filepath"
	"sort"
)

// pruneOldest removes the oldest entries of dir (by modification time)
// beyond keep, except the one named spare (the run in progress, the release
// the module path points at), so that a node that deploys every hour does
// not fill its disk.
func pruneOldest(dir string, keep int, spare string) {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) <= keep {
		return
	}
	type aged struct {
		name string
		mod  int64
	}
	var all []aged
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			all = append(all, aged{e.Name(), info.ModTime().UnixNano()})
		}
	}
	if len(all) <= keep {
		return // entries vanished while being read (another prune)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod > all[j].mod })
	for _, a := range all[keep:] {
		if a.name != spare {
			os.RemoveAll(filepath.Join(dir, a.name))
		}
	}
}
