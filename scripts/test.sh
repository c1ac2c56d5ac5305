#!/bin/sh
# The test command of README.md, and what CI runs (.ci/run installs the
# system packages first; this script also installs any that are missing):
# static checks, the whole Go test suite against
# real serf agents, git, Puppet (apply and a real puppetserver) and Loki,
# then the demo.
#
# Env: SERFDEPLOY_TEST_FLAGS extra `go test` flags (e.g. "-run Deploy -v").
set -eu
cd "$(dirname "$0")/.."

# The Debian packages the tests use, installed when missing (as root), so
# that on a fresh machine this one command does all the set-up.
packages="serf puppet-agent puppetserver git shellcheck jenkins-job-builder groovy curl ca-certificates procps libxml2-utils nftables iproute2 lintian file zsh chromium"
missing=
for cmd in serf puppet puppetserver git shellcheck jenkins-jobs groovy curl pkill xmllint nft ip lintian file zsh chromium; do
	command -v "$cmd" >/dev/null 2>&1 || missing="$missing $cmd"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "test.sh: missing:$missing; run as root to install: apt-get install -y $packages" >&2
		exit 1
	fi
	echo "== installing Debian packages (missing:$missing)"
	apt-get update
	# shellcheck disable=SC2086 # one word per package
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $packages
fi
if ! command -v go >/dev/null 2>&1; then
	echo "test.sh: Go is not installed (expected at /usr/local/go/bin)" >&2
	exit 1
fi

step() { echo "== $* ($(date -u +%H:%M:%S))"; }

step "Loki (built once into the cache)"
SERFDEPLOY_LOKI=$(sh scripts/build-loki.sh)
export SERFDEPLOY_LOKI

step "gofmt, go vet, staticcheck"
unformatted=$(gofmt -l .)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on: $unformatted" >&2
	exit 1
fi
go vet ./...
# Pinned: a new staticcheck release may add checks; move the pin on purpose.
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

step "shellcheck"
shellcheck -x -s sh scripts/*.sh .ci/run

step "Jenkins files"
sh scripts/check-jenkins.sh

step "package"
sh scripts/check-package.sh

step "go test -race (the packages whose tests run the code in-process)"
# cmd/serfdeploy and bench drive the built binary against real agents: the
# race detector would only watch the test harness there, at twice the time.
inprocess=$(go list ./... | grep -v -e '/cmd/serfdeploy$' -e '/bench/')
# shellcheck disable=SC2086 # the extra flags and package list are words on purpose
go test -race -count=1 -timeout 25m ${SERFDEPLOY_TEST_FLAGS:-} $inprocess

step "go test (the binary against real agents)"
# shellcheck disable=SC2086 # the extra flags are words on purpose
go test -count=1 -timeout 25m ${SERFDEPLOY_TEST_FLAGS:-} ./cmd/serfdeploy ./bench/...

step "demo"
sh scripts/demo.sh

step "all green"
