package main

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

var unsafeIDChars = regexp.MustCompile(`[^A-Za-z0-9._:+-]+`)

// defaultID is Jenkins' BUILD_TAG (e.g. jenkins-release-deploy-42) when
// set, so a deploy and its log records lead back to the build; otherwise a
// time-sortable id with a random suffix.
func defaultID(getenv func(string) string, now time.Time) string {
	if tag := getenv("BUILD_TAG"); tag != "" {
		id := strings.Trim(unsafeIDChars.ReplaceAllString(tag, "-"), "-._:+")
		if len(id) > 128 {
			id = id[len(id)-128:]
			id = strings.TrimLeft(id, "-._:+")
		}
		if protocol.ValidID(id) == nil {
			return id
		}
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
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
