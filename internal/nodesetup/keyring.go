package nodesetup

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
)

// planKeyring makes key the primary (first) key of serf's keyring file,
// a JSON array of base64 keys. The other keys are kept: during a
// rotation (`serf keys -install/-use/-remove`) they are still needed to
// read the nodes that have not switched yet. The file is 0600 whatever
// its mode was.
func planKeyring(r *Result, path, key string) (*pending, error) {
	b, existed, err := readIfExists(path)
	if err != nil {
		return nil, err
	}
	var keys []string
	if existed {
		if err := json.Unmarshal(b, &keys); err != nil {
			return nil, fmt.Errorf("%s is not a serf keyring (a JSON array of keys): %w; nothing was changed", path, err)
		}
	}
	want := []string{key}
	for _, k := range keys {
		if k != key {
			want = append(want, k)
		}
	}
	if existed && slices.Equal(keys, want) {
		// serf rewrites this file itself: keep its bytes, fix the mode.
		return &pending{path, b, modeSecret}, nil
	}
	r.change(path, "primary key: (changed)")
	data, err := json.Marshal(want)
	if err != nil {
		return nil, fmt.Errorf("encoding the keyring: %w", err)
	}
	return &pending{path, append(data, '\n'), modeSecret}, nil
}

// keyringMode tightens an existing keyring that is not 0600 (an older
// install under umask 000, say) even when no key was given.
func keyringMode(r *Result, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return nil // no keyring: nothing to tighten
	}
	if fi.Mode().Perm() == modeSecret {
		return nil
	}
	if err := os.Chmod(path, modeSecret); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r.change(path, "mode %04o -> %04o", fi.Mode().Perm(), modeSecret)
	return nil
}
