package main

import (
	"crypto/rand"
	"regexp"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

var unsafeIDChars = regexp.MustCompile(`[^A-Za-z0-9._:+-]+`)

// defaultID names one invocation: Jenkins' BUILD_TAG (e.g.
// jenkins-release-deploy-42) plus a short random suffix when set, so that a
// deploy and its log records lead back to the build and a second deploy or
// run in the same build is never taken for the first; otherwise a
// time-sortable id with a random suffix.
func defaultID(getenv func(string) string, now time.Time) string {
	suffix := randomSuffix(4)
	if tag := getenv("BUILD_TAG"); tag != "" {
		id := strings.Trim(unsafeIDChars.ReplaceAllString(tag, "-"), "-._:+")
		if max := 128 - len(suffix) - 1; len(id) > max {
			id = strings.TrimLeft(id[len(id)-max:], "-._:+")
		}
		if id != "" && protocol.ValidID(id+"-"+suffix) == nil {
			return id + "-" + suffix
		}
	}
	return now.UTC().Format("20060102T150405Z") + "-" + randomSuffix(6)
}

// randomSuffix is n characters of [0-9a-z].
func randomSuffix(n int) string {
	const chars = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b)
}

// buildFromEnv reads the Jenkins build's context, carried into the deploy
// and the nodes' log records.
func buildFromEnv(getenv func(string) string) *protocol.Build {
	b := &protocol.Build{Tag: getenv("BUILD_TAG"), URL: getenv("BUILD_URL"), Job: getenv("JOB_NAME")}
	if *b == (protocol.Build{}) {
		return nil
	}
	return b
}
