# Functions the scripts share; sourced, POSIX sh.

# retry TRIES INTERVAL CMD...: runs CMD until it succeeds, at most TRIES
# times, INTERVAL seconds apart; returns 1 when it never does.
retry() {
	tries=$1 interval=$2
	shift 2
	n=1
	until "$@"; do
		[ "$n" -lt "$tries" ] || return 1
		n=$((n + 1))
		sleep "$interval"
	done
}
