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
	// One id per run: two runs in one build never share one.
	first := defaultID(env(map[string]string{"BUILD_TAG": "jenkins-release-42"}), time.Now(), "")
	second := defaultID(env(map[string]string{"BUILD_TAG": "jenkins-release-42"}), time.Now(), "")
	if !regexp.MustCompile(`^jenkins-release-42-[0-9a-z]{4}$`).MatchString(first) || first == second {
		t.Fatalf("BUILD_TAG: %q then %q", first, second)
	}
	// One id per deploy: the same deploy again in the same build (a
	// rebuild after an abort) re-attaches; another deploy gets its own.
	build := env(map[string]string{"BUILD_TAG": "jenkins-release-42"})
	v1 := defaultID(build, time.Now(), deployRequest("motd", "v1", "", []string{"segment=qa", "dc=a"}, nil))
	again := defaultID(build, time.Now(), deployRequest("motd", "v1", "", []string{"dc=a", "segment=qa"}, nil))
	v2 := defaultID(build, time.Now(), deployRequest("motd", "v2", "", []string{"segment=qa", "dc=a"}, nil))
	prod := defaultID(build, time.Now(), deployRequest("motd", "v1", "", []string{"segment=prod", "dc=a"}, nil))
	if !regexp.MustCompile(`^jenkins-release-42-[0-9a-z]{6}$`).MatchString(v1) || v1 != again || v1 == v2 || v1 == prod {
		t.Fatalf("deploy ids: %q, again %q, v2 %q, prod %q", v1, again, v2, prod)
	}
	long := defaultID(env(map[string]string{"BUILD_TAG": strings.Repeat("j", 300)}), time.Now(), "")
	if err := protocol.ValidID(long); err != nil {
		t.Fatalf("long BUILD_TAG: %v", err)
	}
	// Folder jobs put spaces and slashes in BUILD_TAG.
	id := defaultID(env(map[string]string{"BUILD_TAG": "jenkins-team/app deploy-7"}), time.Now(), "")
	if err := protocol.ValidID(id); err != nil || !strings.Contains(id, "deploy-7") {
		t.Fatalf("sanitised BUILD_TAG %q: %v", id, err)
	}
	now := time.Date(2026, 11, 24, 20, 1, 2, 0, time.UTC)
	a := defaultID(env(nil), now, "")
	b := defaultID(env(nil), now.Add(time.Second), "")
	if !regexp.MustCompile(`^20261124T200102Z-[0-9a-z]{6}$`).MatchString(a) || !(a < b) {
		t.Fatalf("generated ids %q %q are not time-sortable", a, b)
	}
}
