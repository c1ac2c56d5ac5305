#!/bin/sh
# Run Grafana Loki single-binary on loopback with filesystem storage, for
# the demo (tests use testkit/loki).
#
# Usage: scripts/loki.sh config DIR HTTP_PORT GRPC_PORT            (writes DIR/loki.yaml only)
#        scripts/loki.sh start DIR HTTP_PORT GRPC_PORT [BINARY]   (pid in DIR/loki.pid, log in DIR/loki.log)
#        scripts/loki.sh wait URL                                 (until /ready answers, at most 120s)
#        scripts/loki.sh stop DIR
set -eu
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

# config DIR HTTP_PORT GRPC_PORT: the single-binary config, filesystem
# storage under DIR, loopback only, no auth.
config() {
	dir=$1 http=$2 grpc=$3
	mkdir -p "$dir"
	cat > "$dir/loki.yaml" <<YAML
auth_enabled: false
server:
  http_listen_address: 127.0.0.1
  http_listen_port: $http
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: $grpc
  log_level: warn
common:
  instance_addr: 127.0.0.1
  path_prefix: $dir/data
  storage:
    filesystem:
      chunks_directory: $dir/data/chunks
      rules_directory: $dir/data/rules
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
schema_config:
  configs:
    - from: 2020-01-01
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h
limits_config:
  reject_old_samples: false
analytics:
  reporting_enabled: false
YAML
}

cmd=${1:-}
case "$cmd" in
config)
	config "$2" "$3" "$4"
	;;
start)
	dir=$2
	bin=${5:-$(sh "$(dirname "$0")/build-loki.sh")}
	config "$2" "$3" "$4"
	"$bin" -config.file="$dir/loki.yaml" > "$dir/loki.log" 2>&1 &
	echo $! > "$dir/loki.pid"
	;;
wait)
	url=$2
	ready() { curl -fsS "$url/ready" >/dev/null 2>&1; }
	if ! retry 240 0.5 ready; then
		echo "loki.sh: Loki at $url not ready after 120s" >&2
		exit 1
	fi
	;;
stop)
	dir=$2
	if [ -f "$dir/loki.pid" ]; then
		kill "$(cat "$dir/loki.pid")" 2>/dev/null || true
		rm -f "$dir/loki.pid"
	fi
	;;
*)
	sed -n '2,9p' "$0" >&2
	exit 2
	;;
esac
