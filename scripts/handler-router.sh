#!/bin/sh
# Serf event-handler router, for shops that want shell only.
#
# Serf runs one -event-handler for every event. This router runs the
# executable in $SERF_HANDLERS_DIR (default /etc/serf/handlers) named after
# the event, the way the classic serf router does:
#   user events:  user-NAME      (e.g. user-deploy)
#   queries:      query-NAME     (e.g. query-puppetrun; its stdout is the answer)
#   membership:   member-join, member-leave, member-failed, member-update, member-reap
# The payload arrives on stdin and is passed through. A missing handler is
# not an error: most events need none.
#
# serfdeploy registers its own handler for its event and queries only
# (-event-handler "user:deploy,query:puppetrun,...=serfdeploy handle ...",
# protocol.HandlerFilter) and does not run these executables: register this
# router as a second -event-handler for the operator's own, e.g.
#   -event-handler "member-join,member-leave,member-failed,user,query=/usr/local/bin/handler-router.sh"
# Each event it receives costs one fork of sh (about 2 ms of CPU).
set -u

dir=${SERF_HANDLERS_DIR:-/etc/serf/handlers}

case "${SERF_EVENT:-}" in
	user) name="user-${SERF_USER_EVENT:-}" ;;
	query) name="query-${SERF_QUERY_NAME:-}" ;;
	"")
		echo "SERF_EVENT is not set: this script is run by a serf agent" >&2
		exit 2
		;;
	*) name="$SERF_EVENT" ;;
esac

# Event and query names come from the network: only plain names may pick a
# file, so that "../" or an option never does.
case "$name" in
	*[!A-Za-z0-9_.-]* | -* | user- | query-)
		echo "ignoring event with unsafe name: $name" >&2
		exit 0
		;;
esac

handler="$dir/$name"
if [ -x "$handler" ]; then
	exec "$handler"
fi
exit 0
