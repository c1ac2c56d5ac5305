package main

import (
	"crypto/rand"
	"crypto/sha256"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

var unsafeIDChars = regexp.MustCompile(`[^A-Za-z0-9._:+-]+`)

// defaultID names one invocation: Jenkins' BUILD_TAG (e.g.
// jenkins-release-deploy-42) plus a short suffix when set, so that a deploy
// and its log records lead back to the build; otherwise a time-sortable id
// with a random suffix.
//
// request, when not empty, describes a deploy (module, ref, environment,
// targets): the suffix is then derived from it, so that the same deploy
// started again in the same build (a rebuild after an abort, a retry) gets
// the same id and follows the runs already made instead of queueing second
// ones, while another deploy in that build (another ref, other targets)
// gets its own. An empty request (an ad-hoc run) gets a random suffix:
// running again is the point.
func defaultID(getenv func(string) string, now time.Time, request string) string {
	suffix := randomSuffix(4)
	if request != "" {
		suffix = derivedSuffix(request, 6)
	}
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

// derivedSuffix is n characters of [0-9a-z] from a hash of s.
func derivedSuffix(s string, n int) string {
	const chars = "0123456789abcdefghijklmnopqrstuvwxyz"
	sum := sha256.Sum256([]byte(s))
	b := make([]byte, n)
	for i := range b {
		b[i] = chars[int(sum[i])%len(chars)]
	}
	return string(b)
}

// deployRequest is what makes two deploys the same one, for defaultID.
func deployRequest(module, ref, environment string, tags, nodes []string) string {
	tags, nodes = slices.Sorted(slices.Values(tags)), slices.Sorted(slices.Values(nodes))
	return strings.Join([]string{"deploy", module, ref, environment, strings.Join(tags, "\x00"), strings.Join(nodes, "\x00")}, "\x01")
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
