#!/bin/sh
# Install serfdeploy on a node: the binary, its config, and the serf agent
# as a systemd service with serfdeploy as its event handler.
#
# Usage: scripts/install.sh --role master|agent --join HOST [--tag k=v]...
#                           [--rpc-auth KEY] [--encrypt-key KEY]
#   Run from a checkout as root; builds the binary with Go if bin/serfdeploy
#   is missing. Existing config files are kept. --encrypt-key encrypts serf's
#   gossip: one key for the whole cluster, made once with `serf keygen`,
#   kept in /etc/serf/serf.keyring (0600). See docs/security.md.
#
# SERFDEPLOY_INSTALL_ROOT=DIR (for tests) installs under DIR instead of /,
# with DIR in the paths written into serf.json, and leaves systemd alone.
set -eu

role=agent
join=
rpc_auth=
encrypt_key=
tags=
while [ $# -gt 0 ]; do
	case "$1" in
		--role) role=$2; shift 2 ;;
		--join) join=$2; shift 2 ;;
		--tag) tags="$tags $2"; shift 2 ;;
		--rpc-auth) rpc_auth=$2; shift 2 ;;
		--encrypt-key) encrypt_key=$2; shift 2 ;;
		-h | --help) sed -n '2,10p' "$0"; exit 0 ;;
		*) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
case "$role" in
	master | agent) ;;
	*) echo "install.sh: --role must be master or agent" >&2; exit 2 ;;
esac
if [ -n "$encrypt_key" ]; then
	# serf takes a base64 AES key of 16, 24 or 32 bytes. Never print it.
	size=0
	case "$encrypt_key" in
		*[!A-Za-z0-9+/=]*) ;;
		*) size=$(printf '%s' "$encrypt_key" | base64 -d 2>/dev/null | wc -c | tr -d ' ') ;;
	esac
	case "$size" in
		16 | 24 | 32) ;;
		*) echo "install.sh: --encrypt-key is not a base64 key of 16, 24 or 32 bytes (make one with: serf keygen)" >&2; exit 2 ;;
	esac
fi

dest=${SERFDEPLOY_INSTALL_ROOT:-}
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -x "$root/bin/serfdeploy" ]; then
	(cd "$root" && go build -o bin/serfdeploy ./cmd/serfdeploy)
fi
if [ -n "$dest" ]; then
	install -d -m 0755 "$dest/usr/local/bin" "$dest/etc/systemd/system"
fi
install -m 0755 "$root/bin/serfdeploy" "$dest/usr/local/bin/serfdeploy"
install -d -m 0755 "$dest/etc/serfdeploy" "$dest/etc/serf" "$dest/etc/serf/handlers" "$dest/var/lib/serfdeploy"

# Files that hold a key are created 0600 (umask 077 in a subshell).
node_yaml=$dest/etc/serfdeploy/node.yaml
if [ ! -e "$node_yaml" ]; then
	(
		[ -n "$rpc_auth" ] && umask 077
		{
			echo "# serfdeploy node config; see README.md, \"Node configuration\"."
			echo "role: $role"
			if [ -n "$rpc_auth" ]; then
				echo "serf:"
				echo "  rpc_auth: \"$rpc_auth\""
			fi
		} > "$node_yaml"
	)
fi

# serf's keyring file: a JSON array of base64 keys, the first the primary.
# serf rewrites it on `serf keys -install/-use/-remove`. Not named *.json:
# serf reads every *.json in /etc/serf as agent config.
keyring=$dest/etc/serf/serf.keyring
if [ -n "$encrypt_key" ]; then
	if [ ! -e "$keyring" ]; then
		(umask 077 && printf '["%s"]\n' "$encrypt_key" > "$keyring")
	elif ! grep -q -F "\"$encrypt_key\"" "$keyring"; then
		echo "install.sh: warning: $keyring exists and does not hold the given key; kept as it is (to change keys, use serf keys: see docs/security.md)" >&2
	fi
fi

serf_json=$dest/etc/serf/serf.json
if [ ! -e "$serf_json" ]; then
	node=$(hostname -f 2>/dev/null || hostname)
	(
		[ -n "$rpc_auth" ] && umask 077
		{
			printf '{\n  "node_name": "%s",\n' "$node"
			[ -n "$join" ] && printf '  "start_join": ["%s"],\n' "$join"
			[ -n "$rpc_auth" ] && printf '  "rpc_auth": "%s",\n' "$rpc_auth"
			[ -e "$keyring" ] && printf '  "keyring_file": "%s",\n' "$keyring"
			printf '  "tags": {"fqdn": "%s"' "$node"
			[ "$role" = master ] && printf ', "role": "puppetmaster"'
			for t in $tags; do
				printf ', "%s": "%s"' "${t%%=*}" "${t#*=}"
			done
			printf '}\n}\n'
		} > "$serf_json"
	)
elif [ -e "$keyring" ] && ! grep -q '"keyring_file"' "$serf_json"; then
	echo "install.sh: warning: $serf_json was kept and has no keyring_file: add \"keyring_file\": \"$keyring\" to it and restart serf to encrypt gossip" >&2
fi
# Kept files from an older install: tighten them if they hold the RPC key.
for f in "$node_yaml" "$serf_json"; do
	if grep -q -E 'rpc_auth"?: *("[^"]|[^" #])' "$f"; then
		chmod 0600 "$f"
	fi
done
if [ ! -e "$keyring" ]; then
	echo "install.sh: warning: serf gossip is NOT encrypted: any host that reaches this node's serf port (7946) can join the cluster and fire deploy and puppetrun. Install with --encrypt-key KEY (the same key on every node, made once with: serf keygen); see docs/security.md" >&2
fi

install -m 0644 "$root/scripts/systemd/serf.service" "$dest/etc/systemd/system/serf.service"
if [ -n "$dest" ]; then
	echo "installed under $dest (role $role); systemd left alone"
	exit 0
fi
systemctl daemon-reload
systemctl enable --now serf.service
echo "installed: serf agent running with serfdeploy as its handler (role $role)"
