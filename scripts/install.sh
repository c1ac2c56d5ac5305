#!/bin/sh
# Install serfdeploy on a node: the binary, its config, and the serf agent
# as a systemd service with serfdeploy as its event handler.
#
# Usage: scripts/install.sh --role master|agent --join HOST [--tag k=v]... [--rpc-auth KEY]
#   Run from a checkout as root; builds the binary with Go if bin/serfdeploy
#   is missing. Existing config files are kept.
set -eu

role=agent
join=
rpc_auth=
tags=
while [ $# -gt 0 ]; do
	case "$1" in
		--role) role=$2; shift 2 ;;
		--join) join=$2; shift 2 ;;
		--tag) tags="$tags $2"; shift 2 ;;
		--rpc-auth) rpc_auth=$2; shift 2 ;;
		-h | --help) sed -n '2,7p' "$0"; exit 0 ;;
		*) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
case "$role" in
	master | agent) ;;
	*) echo "install.sh: --role must be master or agent" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$root/bin/serfdeploy" ]; then
	(cd "$root" && go build -o bin/serfdeploy ./cmd/serfdeploy)
fi
install -m 0755 "$root/bin/serfdeploy" /usr/local/bin/serfdeploy
install -d -m 0755 /etc/serfdeploy /etc/serf /etc/serf/handlers /var/lib/serfdeploy

if [ ! -e /etc/serfdeploy/node.yaml ]; then
	{
		echo "# serfdeploy node config; see README.md, \"Node configuration\"."
		echo "role: $role"
		if [ -n "$rpc_auth" ]; then
			echo "serf:"
			echo "  rpc_auth: \"$rpc_auth\""
		fi
	} > /etc/serfdeploy/node.yaml
fi

if [ ! -e /etc/serf/serf.json ]; then
	node=$(hostname -f 2>/dev/null || hostname)
	{
		printf '{\n  "node_name": "%s",\n' "$node"
		[ -n "$join" ] && printf '  "start_join": ["%s"],\n' "$join"
		[ -n "$rpc_auth" ] && printf '  "rpc_auth": "%s",\n' "$rpc_auth"
		printf '  "tags": {"fqdn": "%s"' "$node"
		[ "$role" = master ] && printf ', "role": "puppetmaster"'
		for t in $tags; do
			printf ', "%s": "%s"' "${t%%=*}" "${t#*=}"
		done
		printf '}\n}\n'
	} > /etc/serf/serf.json
fi

install -m 0644 "$root/scripts/systemd/serf.service" /etc/systemd/system/serf.service
systemctl daemon-reload
systemctl enable --now serf.service
echo "installed: serf agent running with serfdeploy as its handler (role $role)"
