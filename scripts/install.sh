#!/bin/sh
# Install serfdeploy on a Debian node, as root, safe to re-run:
#   1. the Debian packages serf and puppet-agent, with apt-get, when missing;
#   2. the serfdeploy binary as /usr/local/bin/serfdeploy;
#   3. `serfdeploy install --systemd "$@"`: /etc/serf/serf.json (serfdeploy's
#      event handler, tags, join address, RPC key), the keyring, the node
#      config /etc/serfdeploy/node.yaml and the drop-in
#      /etc/systemd/system/serf.service.d/serfdeploy.conf for Debian's unit.
#      A setting given replaces what the files say, one not given is kept;
#      it prints each change (keys only as "(changed)") or "nothing changed";
#   4. serf enabled, and restarted when something changed, if systemd runs.
#
# Usage: scripts/install.sh [--binary-from FILE] [serfdeploy install flags]
#   e.g. scripts/install.sh --role master --join serf-1.example.com \
#          --tag segment=qa --encrypt-key KEY --rpc-auth SECRET \
#          --log-url http://loki:3100 \
#          --git-url 'https://git.example.com/puppet/{module}.git'
#   Every flag: `serfdeploy install --help`. The binary comes from FILE, else
#   bin/serfdeploy of this checkout; it is built with Go only when neither
#   exists (and the script says so).
#
# Puppet: node.yaml's defaults suit Debian's puppet-agent (puppet in
# /usr/bin, state in /var/cache/puppet). Puppet's own packages
# (apt.puppet.com) put puppet in /opt/puppetlabs/bin, which is not on
# systemd's PATH: the drop-in adds it to the PATH serf's handler runs with.
# They also keep Puppet's state elsewhere: pass --puppet-summary-file and
# --puppet-state-dir, from `puppet config print lastrunfile statedir`.
#
# SERFDEPLOY_INSTALL_ROOT=DIR (tests): install under DIR (every path written
# into the files too), without apt-get or systemctl.
set -eu

say() { echo "install.sh: $*" >&2; }

src=
if [ "${1:-}" = --binary-from ]; then
	[ $# -ge 2 ] || { say "--binary-from needs a file"; exit 2; }
	src=$2
	shift 2
fi
case "${1:-}" in
	-h | --help) sed -n '2,30p' "$0"; exit 0 ;;
esac

dest=${SERFDEPLOY_INSTALL_ROOT:-}
checkout=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "$dest" ]; then
	missing=
	command -v serf >/dev/null 2>&1 || missing="serf"
	if ! command -v puppet >/dev/null 2>&1 && [ ! -x /opt/puppetlabs/bin/puppet ]; then
		missing="$missing puppet-agent"
	fi
	if [ -n "$missing" ]; then
		[ "$(id -u)" -eq 0 ] || { say "missing$missing; run as root to install it"; exit 2; }
		say "installing$missing with apt-get"
		apt-get update -q
		# shellcheck disable=SC2086 # one word per package
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
	fi
fi

if [ -z "$src" ]; then
	src=$checkout/bin/serfdeploy
	if [ ! -x "$src" ]; then
		say "no bin/serfdeploy in $checkout: building it with Go"
		(cd "$checkout" && go build -o bin/serfdeploy ./cmd/serfdeploy)
	fi
fi
[ -x "$src" ] || { say "$src is not an executable serfdeploy"; exit 2; }
install -d -m 0755 "$dest/usr/local/bin"
install -m 0755 "$src" "$dest/usr/local/bin/serfdeploy"

if [ -n "$dest" ]; then
	exec "$dest/usr/local/bin/serfdeploy" install --systemd --root "$dest" "$@"
fi
code=0
out=$(/usr/local/bin/serfdeploy install --systemd "$@") || code=$?
printf '%s\n' "$out"
[ "$code" -eq 0 ] || exit "$code"
if [ -d /run/systemd/system ]; then
	systemctl enable serf.service
	if [ "$out" != "nothing changed" ] || ! systemctl is-active --quiet serf.service; then
		systemctl restart serf.service
		say "serf restarted"
	fi
else
	say "systemd is not running here: start serf yourself (serf agent -config-dir=/etc/serf)"
fi
