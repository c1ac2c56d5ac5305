#!/bin/sh
# The test command of README.md, and what CI runs (.ci/run installs the
# system packages first): static checks, the whole Go test suite against
# real serf agents, git, Puppet (apply and a real puppetserver) and Loki,
# then the demo.
#
# Env: SERFDEPLOY_TEST_FLAGS extra `go test` flags (e.g. "-run Deploy -v").
set -eu
cd "$(dirname "$0")/.."

need() {
	for cmd in "$@"; do
		if ! command -v "$cmd" >/dev/null 2>&1; then
			echo "test.sh: $cmd is not installed; run .ci/run as root (it installs the Debian packages the tests need)" >&2
			exit 1
		fi
	done
}
need go git serf puppet puppetserver shellcheck jenkins-jobs curl

step() { echo "== $* ($(date -u +%H:%M:%S))"; }

step "Loki (built once into the cache)"
SERFDEPLOY_LOKI=$(sh scripts/build-loki.sh)
export SERFDEPLOY_LOKI

step "gofmt, go vet"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on: $unformatted" >&2
	exit 1
fi
go vet ./...

step "shellcheck"
shellcheck -s sh scripts/*.sh .ci/run

step "Jenkins files"
jenkins-jobs test jenkins/jjb -o "$(mktemp -d)" >/dev/null
if command -v groovy >/dev/null 2>&1; then
	groovy scripts/groovy-syntax.groovy jenkins/Jenkinsfile jenkins/vars/*.groovy
else
	echo "groovy not installed: skipping the Groovy syntax check"
fi

step "go test"
# shellcheck disable=SC2086 # the extra flags are words on purpose
go test -count=1 -timeout 25m ${SERFDEPLOY_TEST_FLAGS:-} ./...

step "demo"
sh scripts/demo.sh

step "all green"
