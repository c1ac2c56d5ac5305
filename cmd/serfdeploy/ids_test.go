package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

func TestDefaultID(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if id := defaultID(env(map[string]string{"BUILD_TAG": "jenkins-release-42"}), time.Now()); id != "jenkins-release-42" {
		t.Fatalf("BUILD_TAG: %q", id)
	}
	// Folder jobs put spaces and slashes in BUILD_TAG.
	id := defaultID(env(map[string]string{"BUILD_TAG": "jenkins-team/app deploy-7"}), time.Now())
	if err := protocol.ValidID(id); err != nil || !strings.Contains(id, "deploy-7") {
		t.Fatalf("sanitised BUILD_TAG %q: %v", id, err)
	}
	now := time.Date(2026, 11, 24, 20, 1, 2, 0, time.UTC)
	a := defaultID(env(nil), now)
	b := defaultID(env(nil), now.Add(time.Second))
	if !regexp.MustCompile(`^20261124T200102Z-[0-9a-f]{6}$`).MatchString(a) || !(a < b) {
		t.Fatalf("generated ids %q %q are not time-sortable", a, b)
	}
}
