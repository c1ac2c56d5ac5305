package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version and buildDate are set at package time by scripts/package.sh:
//
//	go build -ldflags "-X main.version=1.2.3 -X main.buildDate=2026-12-06T22:00:00Z"
//
// A plain `go build` leaves them empty: "dev", and no build date.
var (
	version   string
	buildDate string
)

// versionString is what `serfdeploy --version` prints after
// "serfdeploy version " and what --help shows: the release, then the
// commit it was built from, so that one line tells which build a node runs.
func versionString() string {
	info, _ := debug.ReadBuildInfo()
	return formatVersion(version, buildDate, info)
}

// formatVersion is versionString without the process, for tests. The
// commit comes from the build info Go records when it builds inside a git
// checkout with -buildvcs (package.sh asks for it; GOFLAGS may turn it off).
func formatVersion(version, buildDate string, info *debug.BuildInfo) string {
	if version == "" {
		version = "dev"
	}
	settings := map[string]string{}
	goVersion := runtime.Version()
	if info != nil {
		goVersion = info.GoVersion
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
	}
	parts := []string{"commit unknown"}
	if rev := settings["vcs.revision"]; rev != "" {
		parts[0] = "commit " + rev
		if settings["vcs.modified"] == "true" {
			// Built from a tree with uncommitted changes: the commit alone
			// does not say what is in it.
			parts = append(parts, "modified")
		}
		if t := settings["vcs.time"]; t != "" {
			parts = append(parts, "committed "+t)
		}
	}
	if buildDate != "" {
		parts = append(parts, "built "+buildDate)
	}
	parts = append(parts, goVersion)
	return version + " (" + strings.Join(parts, ", ") + ")"
}
