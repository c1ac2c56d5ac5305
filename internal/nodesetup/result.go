package nodesetup

import (
	"fmt"
	"strconv"
)

// Result is what an install changed, one line per setting, and what the
// user should still do.
type Result struct {
	Changes  []string
	Warnings []string
}

func (r *Result) change(path, format string, args ...any) {
	r.Changes = append(r.Changes, path+": "+fmt.Sprintf(format, args...))
}

func (r *Result) warn(format string, args ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, args...))
}

// setting reports one setting whose value changed; a secret's value is
// never shown.
func (r *Result) setting(path, name, old, new string, secret bool) {
	if old == new {
		return
	}
	if secret {
		r.change(path, "%s: (changed)", name)
		return
	}
	r.change(path, "%s: %s -> %s", name, show(old), show(new))
}

func show(v string) string {
	if v == "" {
		return "(none)"
	}
	return strconv.Quote(v)
}
