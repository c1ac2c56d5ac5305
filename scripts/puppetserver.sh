#!/bin/sh
# Run Debian's puppetserver for the demo and the tests, with everything
# (config, CA, code, state, logs) under one directory, so that it never
# touches /etc/puppet and several can coexist.
#
# Usage: scripts/puppetserver.sh setup|start|wait|stop|status [DIR]
#   DIR defaults to $SERFDEPLOY_PUPPETSERVER_DIR or /tmp/serfdeploy-puppetserver.
#   Env: PUPPETSERVER_PORT (default 8140), PUPPETSERVER_HEAP (default 768m),
#        PUPPETSERVER_WAIT (seconds, default 180).
# Environments live in DIR/code/environments/<env>; agents connect to
# https://localhost:PORT (certificates are autosigned).
set -eu

cmd=${1:-}
dir=${2:-${SERFDEPLOY_PUPPETSERVER_DIR:-/tmp/serfdeploy-puppetserver}}
port=${PUPPETSERVER_PORT:-8140}
heap=${PUPPETSERVER_HEAP:-768m}
share=/usr/share/puppetserver
etc=/etc/puppet/puppetserver

setup() {
	mkdir -p "$dir/conf" "$dir/conf.d" "$dir/code/environments/production/modules" \
		"$dir/code/environments/production/manifests" "$dir/var" "$dir/run" "$dir/log" "$dir/ssl"
	[ -e "$dir/code/environments/production/manifests/site.pp" ] ||
		: > "$dir/code/environments/production/manifests/site.pp"
	cat > "$dir/conf/puppet.conf" <<CONF
[main]
certname = localhost
ssldir = $dir/ssl
codedir = $dir/code
vardir = $dir/var
logdir = $dir/log
rundir = $dir/run

[server]
cadir = $dir/ca
autosign = true
# Test and demo nodes come back with new keys under old certnames.
allow_duplicate_certs = true
# A module swapped in on disk is used by the very next compile.
environment_timeout = 0
CONF
	for f in "$etc"/conf.d/*.conf; do
		cp "$f" "$dir/conf.d/"
	done
	cat > "$dir/conf.d/puppetserver.conf" <<CONF
jruby-puppet: {
    ruby-load-path: [/usr/lib/puppetserver/ruby/vendor_ruby]
    gem-home: /var/lib/puppetserver/jruby-gems
    gem-path: [\${jruby-puppet.gem-home}, "/usr/lib/puppetserver/vendored-jruby-gems"]
    server-conf-dir: $dir/conf
    server-code-dir: $dir/code
    server-var-dir: $dir/var
    server-run-dir: $dir/run
    server-log-dir: $dir/log
    # One JRuby is plenty for a handful of test agents and starts faster.
    max-active-instances: 1
}
http-client: {}
profiler: {}
CONF
	cat > "$dir/conf.d/webserver.conf" <<CONF
webserver: {
    access-log-config: $etc/request-logging.xml
    client-auth: want
    ssl-host: 127.0.0.1
    ssl-port: $port
}
CONF
	if [ ! -e "$dir/ca/ca_crt.pem" ]; then
		puppetserver ca setup --config "$dir/conf/puppet.conf" \
			--certname localhost --subject-alt-names localhost,puppet,127.0.0.1 >/dev/null
	fi
	echo "puppetserver set up in $dir (environments in $dir/code/environments)"
}

running() {
	[ -f "$dir/puppetserver.pid" ] && kill -0 "$(cat "$dir/puppetserver.pid")" 2>/dev/null
}

start() {
	if running; then
		echo "puppetserver already running (pid $(cat "$dir/puppetserver.pid"))"
		return 0
	fi
	[ -e "$dir/conf/puppet.conf" ] || setup
	# What /usr/bin/puppetserver foreground runs, with our config and heap,
	# as the current user (the directory is ours, not the puppet user's).
	(
		cd "$share"
		exec java "-Xms$heap" "-Xmx$heap" -Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger \
			-Dlogappender=STDOUT -Djruby.lib=/usr/share/jruby/lib -XX:+CrashOnOutOfMemoryError \
			-jar "$share/puppetserver.jar" --config "$dir/conf.d" --bootstrap-config "$etc/services.d"
	) > "$dir/puppetserver.log" 2>&1 &
	echo $! > "$dir/puppetserver.pid"
	echo "puppetserver starting on 127.0.0.1:$port (pid $!, log $dir/puppetserver.log)"
}

wait_ready() {
	limit=${PUPPETSERVER_WAIT:-180}
	begin=$(date +%s)
	until [ "$(curl -sk "https://127.0.0.1:$port/status/v1/simple" 2>/dev/null)" = running ]; do
		if ! running; then
			echo "puppetserver exited; last lines of $dir/puppetserver.log:" >&2
			tail -n 30 "$dir/puppetserver.log" >&2
			exit 1
		fi
		if [ $(($(date +%s) - begin)) -ge "$limit" ]; then
			echo "puppetserver not ready after ${limit}s; see $dir/puppetserver.log" >&2
			exit 1
		fi
		sleep 1
	done
	echo "puppetserver ready on 127.0.0.1:$port after $(($(date +%s) - begin))s"
}

stop() {
	if running; then
		pid=$(cat "$dir/puppetserver.pid")
		kill "$pid" 2>/dev/null || true
		i=0
		while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 30 ]; do
			sleep 1
			i=$((i + 1))
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/puppetserver.pid"
}

case "$cmd" in
	setup) setup ;;
	start) start ;;
	wait) wait_ready ;;
	stop) stop ;;
	status) running ;;
	*)
		sed -n '2,11p' "$0" >&2
		exit 2
		;;
esac
