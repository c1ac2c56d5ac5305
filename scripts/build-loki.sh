#!/bin/sh
# Build Grafana Loki (single binary) from the Go module proxy and cache it
# outside the work tree; print the binary's path on stdout.
#
# Loki is not packaged in Debian. Its go.mod carries replace and exclude
# directives that only apply when Loki is the main module, so a small wrapper
# module copies them (all but the local ./pkg/push one, which is a module of
# its own on the proxy) and builds Loki's cmd/loki from there.
#
# Usage: scripts/build-loki.sh            (builds once, then reuses the cache)
# Env:   LOKI_VERSION (pinned below), SERFDEPLOY_CACHE (default ~/.cache/serfdeploy)
set -eu

version=${LOKI_VERSION:-v3.7.8}
cache=${SERFDEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/serfdeploy}
bin="$cache/loki-$version/loki"

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

work="$cache/loki-$version/wrapper"
rm -rf "$work"
mkdir -p "$work"
cd "$work"

echo "building Loki $version into $bin (about 10 minutes on 2 cores with an empty module cache)" >&2
start=$(date +%s)

gomod=$(go mod download -json "github.com/grafana/loki/v3@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
goversion=$(sed -n 's/^go //p' "$gomod" | head -n 1)

{
	echo "module serfdeploy.local/lokibuild"
	echo
	echo "go $goversion"
	echo
	echo "require github.com/grafana/loki/v3 $version"
	echo
	grep -E '^(replace|exclude) ' "$gomod" | grep -v '=> \./'
} > go.mod

cat > tools.go <<'GO'
//go:build tools

package lokibuild

import _ "github.com/grafana/loki/v3/cmd/loki"
GO

GOFLAGS=-mod=mod go mod tidy >&2
go build -o "$bin.tmp" github.com/grafana/loki/v3/cmd/loki >&2
mv "$bin.tmp" "$bin"
echo "built Loki $version in $(( $(date +%s) - start ))s" >&2
echo "$bin"
