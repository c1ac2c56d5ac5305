package protocol

import (
	"sort"
	"strings"
)

// A master sets each environment's config_version to a script that prints
// the commit of every module serfdeploy installed there, as
// "motd=<commit> ntp=<commit>". Puppet records that string in each run's
// last_run_summary.yaml (version.config), so a finished run says which
// code it applied, and a run that applied another deploy's code is caught.

// FormatCodeVersion writes module commits in the config_version form.
func FormatCodeVersion(commits map[string]string) string {
	var parts []string
	for m, c := range commits {
		parts = append(parts, m+"="+c)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// ParseCodeVersion reads a config_version written by FormatCodeVersion.
// Anything else (Puppet's default, a timestamp) gives an empty map.
func ParseCodeVersion(s string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Fields(s) {
		m, c, ok := strings.Cut(f, "=")
		if ok && ValidModule(m) == nil && c != "" {
			out[m] = c
		}
	}
	return out
}
