#!/bin/sh
# The main job on a local demo cluster, in one command (as root on Debian):
# installs serf and Puppet when missing, builds serfdeploy, starts a Puppet
# server, one master and three agents on loopback (segment=qa on two,
# segment=prod on one), makes a git repository with a sample module, deploys
# it to segment=qa, shows the summary and tears everything down.
#
# Env: DEMO_PUPPET=server (default: `puppet agent --test` against a real
#      puppetserver) or apply (each agent runs `puppet apply`; no server, for
#      machines without room for its 1.3 GB)
#      DEMO_KEEP=1 keeps the work directory for a look afterwards
#      DEMO_PORT_BASE (default 27000) first of the loopback ports used
#      SERFDEPLOY_BIN=FILE runs that serfdeploy (e.g. the one a package
#      installed) instead of building bin/serfdeploy
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"
mode=${DEMO_PUPPET:-server}
base=${DEMO_PORT_BASE:-27000}
case "$mode" in
	server | apply) ;;
	*) echo "demo: DEMO_PUPPET must be server or apply" >&2; exit 2 ;;
esac

started=$(date +%s)
last=$started
step() {
	now=$(date +%s)
	if [ "$last" != "$started" ] || [ "$now" != "$started" ]; then
		echo "   (took $(( now - last ))s)"
	fi
	last=$now
	echo "== $*"
}

step "packages"
pkgs=
command -v serf >/dev/null 2>&1 || pkgs="$pkgs serf"
command -v puppet >/dev/null 2>&1 || pkgs="$pkgs puppet-agent"
command -v git >/dev/null 2>&1 || pkgs="$pkgs git"
if [ "$mode" = server ] && ! command -v puppetserver >/dev/null 2>&1; then
	pkgs="$pkgs puppetserver"
fi
if [ -n "$pkgs" ]; then
	echo "installing:$pkgs"
	apt-get update
	# shellcheck disable=SC2086 # one word per package
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs curl
fi

sd=${SERFDEPLOY_BIN:-}
if [ -z "$sd" ]; then
	step "build serfdeploy"
	# Static, as scripts/package.sh builds it: serf starts it for every
	# query, and the dynamic loader would cost each start about 0.9 ms.
	(cd "$root" && CGO_ENABLED=0 go build -o bin/serfdeploy ./cmd/serfdeploy)
	sd="$root/bin/serfdeploy"
fi

work=$(mktemp -d /tmp/serfdeploy-demo.XXXXXX)
cleanup() {
	status=$?
	trap - EXIT INT TERM
	echo "== teardown"
	for pidfile in "$work"/nodes/*/serf.pid "$work"/loki.pid; do
		if [ -f "$pidfile" ]; then
			kill "$(cat "$pidfile")" 2>/dev/null || true
		fi
	done
	if [ "$mode" = server ]; then
		sh "$root/scripts/puppetserver.sh" stop "$work/puppetserver" >/dev/null 2>&1 || true
	fi
	# Puppet workers are detached on purpose (they outlive serf); the demo
	# must leave nothing behind, so end whatever still runs from its directory.
	pkill -f "$work" 2>/dev/null || true
	sleep 1
	pkill -9 -f "$work" 2>/dev/null || true
	if [ "${DEMO_KEEP:-}" = 1 ] || [ "$status" -ne 0 ]; then
		echo "work directory kept: $work"
	else
		rm -rf "$work"
	fi
	echo "demo finished in $(( $(date +%s) - started ))s (exit $status)"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "git repository with module motd (v1)"
repo="$work/git/motd"
mkdir -p "$repo/manifests" "$work/files"
cat > "$repo/manifests/init.pp" <<PP
# Sample module of the serfdeploy demo: each node's file says which version
# of the module it applied.
class motd {
  file { "$work/files/\${trusted['certname']}.motd":
    ensure  => file,
    content => "managed by serfdeploy demo: motd v1 on \${trusted['certname']}\n",
  }
}
PP
git -C "$repo" init -q -b main
git -C "$repo" -c user.name=demo -c user.email=demo@localhost add -A
git -C "$repo" -c user.name=demo -c user.email=demo@localhost commit -q -m "motd v1"
git -C "$repo" tag v1

env=production
if [ "$mode" = server ]; then
	step "puppetserver (start takes 30-60s)"
	PUPPETSERVER_PORT=$((base + 140)) sh "$root/scripts/puppetserver.sh" setup "$work/puppetserver"
	PUPPETSERVER_PORT=$((base + 140)) sh "$root/scripts/puppetserver.sh" start "$work/puppetserver"
	PUPPETSERVER_PORT=$((base + 140)) sh "$root/scripts/puppetserver.sh" wait "$work/puppetserver"
	codedir="$work/puppetserver/code"
else
	codedir="$work/code"
fi
mkdir -p "$codedir/environments/$env/modules" "$codedir/environments/$env/manifests"
echo 'node default { include motd }' > "$codedir/environments/$env/manifests/site.pp"

loki_url=
loki_bin=${SERFDEPLOY_LOKI:-${SERFDEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/serfdeploy}/loki-v3.7.8/loki}
if [ -x "$loki_bin" ]; then
	step "Loki (binary found at $loki_bin; ready in about 20s)"
	loki_url="http://127.0.0.1:$((base + 100))"
	sh "$root/scripts/loki.sh" start "$work/loki" "$((base + 100))" "$((base + 101))" "$loki_bin"
	cp "$work/loki/loki.pid" "$work/loki.pid"
	sh "$root/scripts/loki.sh" wait "$loki_url"
fi

# node NAME INDEX TAGS... : a serf agent with serfdeploy as its handler.
node() {
	name=$1 i=$2
	shift 2
	d="$work/nodes/$name"
	mkdir -p "$d/state" "$d/handlers"
	p="$d/puppet"
	dirs="--confdir, $p/conf, --vardir, $p/var, --ssldir, $p/ssl, --publicdir, $p/public, --rundir, $p/run, --logdir, $p/log, --certname, $name"
	if [ "$mode" = server ]; then
		cmd="[puppet, agent, --test, --detailed-exitcodes, --environment, '{environment}', --server, localhost, --serverport, '$((base + 140))', --http_keepalive_timeout, '0', --codedir, $p/code, $dirs]"
	else
		cmd="[puppet, apply, --detailed-exitcodes, --environment, '{environment}', --codedir, $codedir, $dirs, $codedir/environments/$env/manifests/site.pp]"
	fi
	cat > "$d/node.yaml" <<YAML
state_dir: $d/state
handlers_dir: $d/handlers
environment: $env
serf:
  rpc_addr: 127.0.0.1:$((base + 10 + i))
master:
  modulepath: $codedir/environments/{environment}/modules
  modules:
    motd: $repo
puppet:
  command: $cmd
  summary_file: $p/public/last_run_summary.yaml
  state_dir: $p/var/state
  timeout: 10m
YAML
	if [ -n "$loki_url" ]; then
		printf 'logging:\n  url: %s\n' "$loki_url" >> "$d/node.yaml"
	fi
	set -- "$@" "fqdn=$name"
	tagargs=
	for t in "$@"; do
		tagargs="$tagargs -tag $t"
	done
	join=
	[ "$i" -gt 0 ] && join="-join 127.0.0.1:$((base + 20))"
	# The filter (protocol.HandlerFilter) has serf run serfdeploy for its own
	# event and queries only, not for every member event.
	# shellcheck disable=SC2086 # tag and join arguments are words on purpose
	serf agent -node "$name" -bind "127.0.0.1:$((base + 20 + i))" -rpc-addr "127.0.0.1:$((base + 10 + i))" \
		-profile local $tagargs $join \
		-event-handler "user:deploy,query:puppetrun,query:puppet-status,query:puppet-disable,query:puppet-enable=$sd handle --config $d/node.yaml" \
		> "$d/serf.log" 2>&1 &
	echo $! > "$d/serf.pid"
}

step "serf agents: puppet-master-01, agent-01 and agent-02 (segment=qa), agent-03 (segment=prod)"
node puppet-master-01 0 role=puppetmaster
sleep 1
node agent-01 1 segment=qa
node agent-02 2 segment=qa
node agent-03 3 segment=prod
export SERF_RPC_ADDR="127.0.0.1:$((base + 10))"
all_alive() { [ "$("$sd" members --status alive --format json | grep -c '"name"')" -eq 4 ]; }
if ! retry 100 0.2 all_alive; then
	echo "demo: the serf agents did not all join; logs in $work/nodes/*/serf.log" >&2
	exit 1
fi
"$sd" members

step "serfdeploy deploy --module motd --ref v1 --tag segment=qa"
set +e
if [ -n "$loki_url" ]; then
	SERFDEPLOY_LOG_URL=$loki_url "$sd" deploy --module motd --ref v1 --tag segment=qa --timeout 5m --poll-interval 1s \
		--junit "$work/junit.xml" --summary-file "$work/summary.md"
else
	"$sd" deploy --module motd --ref v1 --tag segment=qa --timeout 5m --poll-interval 1s \
		--junit "$work/junit.xml" --summary-file "$work/summary.md"
fi
code=$?
set -e

step "what the agents have now"
for n in agent-01 agent-02 agent-03; do
	f="$work/files/$n.motd"
	if [ -f "$f" ]; then
		echo "$n: $(cat "$f")"
	else
		echo "$n: (no file: not a target)"
	fi
done
echo "serfdeploy deploy exited $code"
[ "$code" -eq 0 ] || exit "$code"
for n in agent-01 agent-02; do
	grep -q "motd v1 on $n" "$work/files/$n.motd"
done
[ ! -e "$work/files/agent-03.motd" ]
