#!/bin/sh
# The release, tested for real (scripts/test.sh runs it; as root, on Debian,
# with lintian, file, zsh and serf and Puppet for the demo):
#   1. scripts/package.sh builds dist/ (timed);
#   2. lintian finds no error and no warning in the .deb (each override in
#      build/package/lintian-overrides says why it is right);
#   3. dpkg installs the .deb into an empty root (dpkg --root, maintainer
#      scripts run without chroot, the serf dependency forced): every file,
#      its mode and the conffiles; the binary is static;
#   4. the installed binary: --version names the version and the commit; the
#      man page and the bash and zsh completions work;
#   5. `serfdeploy install` on top of the package leaves the drop-in as it
#      is and node.yaml's comments in place, and the installed handler
#      answers a puppet-status query with that node.yaml;
#   6. scripts/demo.sh deploys with the installed binary (DEMO_PUPPET=apply);
#   7. dpkg --purge takes it all away again, conffiles too.
# Env: CHECK_PACKAGE_DEMO=0 leaves out step 6.
set -eu

cd "$(dirname "$0")/.."
checkout=$(pwd)
fail() { echo "check-package: FAIL: $*" >&2; exit 1; }
say() { echo "check-package: $*"; }

[ "$(id -u)" -eq 0 ] || fail "run as root (dpkg --root installs as root)"

started=$(date +%s)
commit=$(git rev-parse HEAD)
deb=$(sh scripts/package.sh | tail -n 1)
took=$(( $(date +%s) - started ))
[ -f "$deb" ] || fail "scripts/package.sh made no package (last line: $deb)"
version=$(dpkg-deb -f "$deb" Version)
upstream=${version%-*}
say "built $deb in ${took}s: $(stat -c %s "$deb") bytes, installed size $(dpkg-deb -f "$deb" Installed-Size) KiB"

say "lintian"
# Root is fine here: lintian only reads the package (it warns about it).
lintian -I --fail-on error,warning "$deb" 2>&1 | grep -v '^running with root privileges' || true
lintian --fail-on error,warning "$deb" >/dev/null 2>&1 || fail "lintian reports errors or warnings (see above)"
say "lintian: no errors or warnings ($(grep -c '^serfdeploy:' build/package/lintian-overrides) overridden, see build/package/lintian-overrides)"

root=$(mktemp -d /tmp/serfdeploy-package.XXXXXX)
trap 'rm -rf "$root"' EXIT
trap 'exit 130' INT TERM
admin=$root/var/lib/dpkg
mkdir -p "$admin/info" "$admin/updates" "$admin/triggers" "$root/var/log"
: > "$admin/status"
: > "$admin/available"
say "dpkg --install into $root"
dpkg --root="$root" --force-script-chrootless --force-depends --install "$deb" > "$root/dpkg.out" 2>&1 ||
	{ cat "$root/dpkg.out" >&2; fail "dpkg --install"; }
[ "$(dpkg-query --admindir="$admin" -W -f='${Status}' serfdeploy)" = "install ok installed" ] ||
	fail "dpkg does not list serfdeploy as installed"
conffiles=$(dpkg-query --admindir="$admin" -W -f='${Conffiles}' serfdeploy)
for f in /etc/serfdeploy/node.yaml /etc/systemd/system/serf.service.d/serfdeploy.conf; do
	printf '%s\n' "$conffiles" | grep -q "^ $f " || fail "$f is not a conffile: $conffiles"
done
for entry in 755:usr/bin/serfdeploy 644:etc/serfdeploy/node.yaml \
	644:etc/systemd/system/serf.service.d/serfdeploy.conf \
	644:usr/share/bash-completion/completions/serfdeploy 644:usr/share/zsh/vendor-completions/_serfdeploy \
	644:usr/share/man/man1/serfdeploy.1.gz 644:usr/share/doc/serfdeploy/copyright \
	644:usr/share/doc/serfdeploy/changelog.Debian.gz; do
	f=$root/${entry#*:}
	[ -f "$f" ] || fail "not installed: /${entry#*:}"
	[ "$(stat -c %a "$f")" = "${entry%%:*}" ] || fail "/${entry#*:} has mode $(stat -c %a "$f"), want ${entry%%:*}"
done
cmp -s "$root/etc/systemd/system/serf.service.d/serfdeploy.conf" scripts/systemd/serf.service.d/serfdeploy.conf ||
	fail "the installed drop-in is not scripts/systemd/serf.service.d/serfdeploy.conf"
cmp -s "$root/etc/serfdeploy/node.yaml" build/package/node.yaml ||
	fail "the installed node.yaml is not build/package/node.yaml"
sd=$root/usr/bin/serfdeploy
case $(file -b "$sd") in
*"statically linked"*) ;;
*) fail "/usr/bin/serfdeploy is not static: $(file -b "$sd")" ;;
esac
say "installed: files, modes, conffiles; the binary is static"

out=$("$sd" --version)
case $out in
"serfdeploy version $upstream (commit $commit"*) ;;
*) fail "--version says \"$out\"; want version $upstream and commit $commit" ;;
esac
"$sd" --help | grep -q "^   $upstream (commit $commit" || fail "--help has no VERSION line with $upstream"
gzip -dc "$root/usr/share/man/man1/serfdeploy.1.gz" | grep -q "^\.TH serfdeploy 1 .*serfdeploy $upstream" ||
	fail "the man page does not name this release"
offered=$(bash -c '. "$1"; COMP_WORDS=(serfdeploy dep); COMP_CWORD=1; _serfdeploy; echo "${COMPREPLY[*]}"' bash \
	"$root/usr/share/bash-completion/completions/serfdeploy")
[ "$offered" = deploy ] || fail "bash completion of \"serfdeploy dep\" offers \"$offered\""
zsh -n "$root/usr/share/zsh/vendor-completions/_serfdeploy" || fail "the zsh completion does not parse"
say "$out"

say "serfdeploy install on top of the package"
"$sd" install --root "$root" --binary "$sd" --systemd --role agent --node-name pkg-check --tag segment=qa \
	> "$root/install.out" 2>&1 || { cat "$root/install.out" >&2; fail "serfdeploy install"; }
if grep -q "serf.service.d" "$root/install.out"; then
	cat "$root/install.out" >&2
	fail "serfdeploy install changed the packaged drop-in"
fi
grep -q '^# serfdeploy node config' "$root/etc/serfdeploy/node.yaml" || fail "serfdeploy install dropped node.yaml's comments"
grep -q '^role: agent$' "$root/etc/serfdeploy/node.yaml" || fail "serfdeploy install did not set the role"
answer=$(SERF_EVENT=query SERF_QUERY_NAME=puppet-status SERF_SELF_NAME=pkg-check \
	"$sd" handle --config "$root/etc/serfdeploy/node.yaml" < /dev/null)
case $answer in
*'"node":"pkg-check","role":"agent"'*) ;;
*) fail "puppet-status answered by the installed handler: $answer" ;;
esac
say "the handler answers puppet-status with the installed node.yaml: $answer"

if [ "${CHECK_PACKAGE_DEMO:-1}" != 0 ]; then
	say "scripts/demo.sh with the installed binary"
	SERFDEPLOY_BIN=$sd DEMO_PUPPET=apply DEMO_PORT_BASE=27400 sh scripts/demo.sh
fi

dpkg --root="$root" --force-script-chrootless --purge serfdeploy > "$root/dpkg.out" 2>&1 ||
	{ cat "$root/dpkg.out" >&2; fail "dpkg --purge"; }
for f in usr/bin/serfdeploy etc/serfdeploy/node.yaml etc/systemd/system/serf.service.d/serfdeploy.conf; do
	[ ! -e "$root/$f" ] || fail "/$f is still there after dpkg --purge"
done
say "purged; all checks passed ($(( $(date +%s) - started ))s, in $checkout)"
