#!/bin/sh
# Checks the Jenkins files: the Jenkins Job Builder job renders, its
# serfdeploy shell step marks exit 4 unstable, binds the serf RPC key only
# when one is named, ends ABORTED on its timeout and, run against a fake
# serfdeploy, passes the blast-radius parameters and retries an exit 5 only
# when nothing was sent; the Groovy parses; jenkins/test/harness.groovy runs
# the Groovy logic of the Jenkinsfile and the shared step with stubbed steps,
# and must fail on mutants of them (the "fired" test inverted, the exit-4
# test broken); and greps for defects that once shipped in these files.
# Every problem is reported, then the script exits 1 if there was any.
#
# Usage: scripts/check-jenkins.sh [DIR]
#   DIR (or env JENKINS_DIR) holds Jenkinsfile, vars/*.groovy and jjb/;
#   default: jenkins/ of this repository.
# Needs jenkins-jobs (Debian jenkins-job-builder) and groovy.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-${JENKINS_DIR:-$root/jenkins}}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The Groovy greps below read the code without its // comment lines, so
# that a comment naming a defect neither trips nor satisfies them.
mkdir "$tmp/code"
jenkinsfile=$tmp/code/Jenkinsfile
step=$tmp/code/serfDeploy.groovy
grep -v '^[[:space:]]*//' "$dir/Jenkinsfile" >"$jenkinsfile" || true
grep -v '^[[:space:]]*//' "$dir/vars/serfDeploy.groovy" >"$step" || true

problems=0
checks=0
fail() {
	echo "check-jenkins: FAIL: $*" >&2
	problems=$((problems + 1))
}
# need FILE REGEXP MESSAGE: FILE must match the extended REGEXP.
need() {
	checks=$((checks + 1))
	grep -Eq -- "$2" "$1" || fail "$(basename "$1"): $3"
}
# forbid FILE REGEXP MESSAGE: FILE must not match it.
forbid() {
	checks=$((checks + 1))
	if grep -Eq -- "$2" "$1"; then
		fail "$(basename "$1"): $3"
	fi
}
# after FILE FIRST THEN MESSAGE: a line matching THEN comes after one
# matching FIRST.
after() {
	checks=$((checks + 1))
	awk -v first="$2" -v then="$3" 'seen && $0 ~ then { ok = 1 } $0 ~ first { seen = 1 } END { exit !ok }' "$1" ||
		fail "$(basename "$1"): $4"
}
# budget WHAT JOB_MINUTES DEPLOY_MINUTES ATTEMPTS: the attempts must fit in
# the job's timeout. An attempt is serfdeploy's --timeout (the watch) plus
# about 2 minutes around it (serf and logging-service checks, --log-wait);
# 1 more minute is left for the rest of the build.
budget() {
	checks=$((checks + 1))
	if [ -z "$2" ] || [ -z "$3" ] || [ -z "$4" ]; then
		fail "$1: cannot read the time budget (job timeout '$2' minutes, serfdeploy --timeout '$3'm, attempts '$4'); keep them literal so that this check can add them up"
	elif [ $(($4 * ($3 + 2) + 1)) -gt "$2" ]; then
		fail "$1: $4 attempts x (--timeout $3m + 2m) + 1m = $(($4 * ($3 + 2) + 1)) minutes exceed the job's timeout of $2 minutes: the timeout would cut the last attempt short"
	fi
}
# one_value: the single distinct line of stdin, or nothing when there are
# several (two different --timeout values cannot be budgeted).
one_value() {
	sort -u | awk 'NR == 1 { v = $0 } END { if (NR == 1) print v }'
}
# How many times a shell step may run serfdeploy: attempts=N, or the words
# of `for attempt in 1 2`.
attempts_in_step() {
	n=$(sed -n 's/^[[:space:]]*attempts=\([0-9][0-9]*\).*/\1/p' "$1" | head -n 1)
	[ -n "$n" ] || n=$(sed -n 's/^[[:space:]]*for attempt in \([0-9 ]*\);.*/\1/p' "$1" | head -n 1 | wc -w | tr -d " ")
	[ "$n" -eq 0 ] || echo "$n"
}
# The same for the Jenkinsfile: `int attempts = N`, or how many times it
# has a line starting `serfdeploy deploy` (one per sh step).
attempts_in_jenkinsfile() {
	n=$(sed -n 's/.*int attempts = \([0-9][0-9]*\).*/\1/p' "$1" | head -n 1)
	[ -n "$n" ] || n=$(grep -c '^[[:space:]]*serfdeploy deploy' "$1" || true)
	[ "$n" -eq 0 ] || echo "$n"
}

# The JJB shell step is run against this fake serfdeploy (and a sleep that
# does not wait). Each call plays the next word of FAKE_PLAN,
# CODE[:FIRED[:STYLE]] with FIRED true, false or none (no report written),
# and logs its arguments. STYLE compact writes the JSON on one line; term
# first sends SIGTERM to the shell step, as Jenkins stopping the build does
# (to every process of the step), then writes its report "interrupted". A
# node message quoting "fired": true must not be taken for the field.
mkdir "$tmp/bin"
cat >"$tmp/bin/serfdeploy" <<'EOF'
#!/bin/sh
n=$(($(cat "$FAKE_DIR/calls" 2>/dev/null || echo 0) + 1))
echo "$n" >"$FAKE_DIR/calls"
echo "$*" >>"$FAKE_DIR/args"
entry=$(echo "$FAKE_PLAN" | cut -d' ' -f"$n")
code=$(echo "$entry" | cut -d: -f1)
fired=$(echo "$entry" | cut -s -d: -f2)
style=$(echo "$entry" | cut -s -d: -f3)
result= junit=
while [ $# -gt 0 ]; do
	case $1 in
	--result-file) result=$2; shift ;;
	--junit) junit=$2; shift ;;
	esac
	shift
done
[ "$style" = term ] && kill -TERM "$PPID"
[ "$fired" = none ] && exit "$code"
mkdir -p "$(dirname "$result")"
echo '<testsuite name="fake"/>' >"$junit"
if [ "$style" = term ]; then
	printf '{"id":"fake-%s","exit_code":%s,"outcome":"interrupted: the runs go on (exit %s)","fired":%s}\n' \
		"$n" "$code" "$code" "${fired:-true}" >"$result"
elif [ "$style" = compact ]; then
	printf '{"schema_version":2,"id":"fake-%s","nodes":[{"node":"a","message":"said \\"fired\\": true"}],"exit_code":%s,"outcome":"1 finished: said \\"hi\\" \\u003cok\\u003e (exit %s)","fired":%s}\n' \
		"$n" "$code" "$code" "${fired:-true}" >"$result"
else
	printf '{\n  "schema_version": 2,\n  "id": "fake-%s",\n  "nodes": [\n    {\n      "node": "a",\n      "message": "said \\"fired\\": true"\n    }\n  ],\n  "exit_code": %s,\n  "outcome": "1 finished: said \\"hi\\" \\u003cok\\u003e (exit %s)",\n  "fired": %s\n}\n' \
		"$n" "$code" "$code" "${fired:-true}" >"$result"
fi
exit "$code"
EOF
printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/sleep"
chmod +x "$tmp/bin/serfdeploy" "$tmp/bin/sleep"

# scenario PLAN EXIT CALLS WHY [VAR=VALUE...]: run the shell step $step_sh
# of job $job (with the job's parameters MODULE, REF, TARGET_TAG, and the
# VAR=VALUE given) in a workspace holding a previous build's report; it
# must end with EXIT after CALLS calls of serfdeploy, and the stale report
# must be gone. $ws is left naming the workspace, for ran_with.
scenario() {
	plan=$1 want_code=$2 want_calls=$3 why=$4
	shift 4
	checks=$((checks + 1))
	ws=$tmp/ws.$checks
	mkdir -p "$ws/out"
	# A previous build's report, which must not survive.
	echo stale >"$ws/out/serfdeploy-junit.xml"
	set +e
	(cd "$ws" && env FAKE_DIR="$ws" FAKE_PLAN="$plan" PATH="$tmp/bin:$PATH" \
		MODULE=profile_web REF=v1 TARGET_TAG=segment=qa BUILD_TAG=jenkins-release-7 "$@" \
		sh "$step_sh") >"$ws/log" 2>&1
	code=$?
	set -e
	calls=$(cat "$ws/calls" 2>/dev/null || echo 0)
	if [ "$code" -ne "$want_code" ] || [ "$calls" -ne "$want_calls" ]; then
		fail "job $job: serfdeploy playing '$plan' ($why): the step ran it $calls times and exited $code; want $want_calls and $want_code"
	elif grep -qx stale "$ws/out/serfdeploy-junit.xml" 2>/dev/null; then
		fail "job $job: a previous build's out/serfdeploy-junit.xml was still there after the step (playing '$plan'): clear out/ first"
	fi
}
# ran_with WORDS WHY: the last scenario's serfdeploy ran with WORDS (a
# piece of its command line) every time.
ran_with() {
	checks=$((checks + 1))
	if ! [ -s "$ws/args" ] || grep -vqF -- " $1 " "$ws/args"; then
		fail "job $job: $2: want '$1' in serfdeploy's arguments, got:$(sed 's/^/ | /' "$ws/args" 2>/dev/null)"
	fi
}

echo "== Jenkins Job Builder ($dir/jjb)"
checks=$((checks + 1))
if ! jenkins-jobs test "$dir/jjb" -o "$tmp/xml" >"$tmp/jjb.log" 2>&1; then
	cat "$tmp/jjb.log" >&2
	fail "jenkins-jobs test $dir/jjb failed"
fi
for xml in "$tmp"/xml/*; do
	[ -f "$xml" ] || continue
	job=$(basename "$xml")
	step_sh=$tmp/$job.step.sh
	# Each shell step that runs `serfdeploy deploy`: its unstableReturn
	# ("none" when unset) on stdout, its command, XML entities undone, into
	# $step_sh (the first such step; the job has one).
	awk -v out="$step_sh" '
		function unxml(s) {
			gsub(/&quot;/, "\"", s); gsub(/&apos;/, "\047", s)
			gsub(/&lt;/, "<", s); gsub(/&gt;/, ">", s); gsub(/&amp;/, "\\&", s)
			return s
		}
		/<hudson\.tasks\.Shell>/ { inshell = 1; cmd = ""; incmd = 0; ret = "none"; next }
		inshell && /<\/hudson\.tasks\.Shell>/ {
			inshell = 0
			if (cmd ~ /serfdeploy deploy/) {
				print ret
				if (!written) { printf "%s", cmd > out; written = 1 }
			}
			next
		}
		inshell && /<unstableReturn>/ { ret = $0; gsub(/[^0-9]/, "", ret) }
		inshell {
			line = $0
			if (sub(/.*<command>/, "", line)) incmd = 1
			if (!incmd) next
			if (sub(/<\/command>.*/, "", line)) incmd = 0
			cmd = cmd unxml(line) (incmd ? "\n" : "")
		}
	' "$xml" >"$tmp/$job.unstable"
	[ -s "$tmp/$job.unstable" ] || continue
	found=1
	checks=$((checks + 1))
	if grep -vqx 4 "$tmp/$job.unstable"; then
		fail "job $job: the shell step running serfdeploy has no <unstableReturn>4</unstableReturn> (unstable-return: 4 in the YAML), so exit 4 (incomplete) fails the build instead of marking it unstable"
	fi
	checks=$((checks + 1))
	if ! grep -q '<hudson.plugins.build__timeout.operations.AbortOperation' "$xml" ||
		grep -q '<hudson.plugins.build__timeout.operations.FailOperation' "$xml"; then
		fail "job $job: the build timeout must abort the build (timeout: abort: true), as the pipeline's does, not fail it"
	fi
	checks=$((checks + 1))
	if grep -q '<variable>SERF_RPC_AUTH</variable>' "$xml"; then
		fail "job $job: SERF_RPC_AUTH is bound although no serf_rpc_credential is set: serf without rpc_auth refuses any key (exit 5)"
	fi
	checks=$((checks + 1))
	sed -n '/<publishers>/,/<\/publishers>/p' "$xml" >"$tmp/$job.publishers"
	if ! grep -q '<hudson.tasks.junit.JUnitResultArchiver' "$tmp/$job.publishers" ||
		! grep -q '<hudson.tasks.ArtifactArchiver>' "$tmp/$job.publishers" ||
		grep -q '<onlyIfSuccessful>true' "$tmp/$job.publishers"; then
		fail "job $job: the JUnit report and the archive must be publishers (junit, archive without only-if-success), which run whatever the build step ended with"
	fi
	forbid "$step_sh" '^[[:space:]]*([^#[:space:]].*[^a-z])?jq ' "the step uses jq, which the agent may not have; read the result file with sed"
	forbid "$step_sh" '^[[:space:]]*[^#[:space:]].*--id[^a-z].*(attempt|retry)' "a deploy id per attempt (--id ...\$attempt) hides the deploy from \`serfdeploy report\`; let serfdeploy choose it, or pass one id for every attempt"
	budget "job $job" \
		"$(sed -n 's/.*<timeoutMinutes>\([0-9]*\)<\/timeoutMinutes>.*/\1/p' "$xml" | head -n 1)" \
		"$(sed -n 's/.*--timeout \([0-9][0-9]*\)m.*/\1/p' "$step_sh" | one_value)" \
		"$(attempts_in_step "$step_sh")"

	scenario "0:true" 0 1 "success"
	scenario "4:true" 4 1 "incomplete: not retried"
	scenario "1:true" 1 1 "a run failed: not retried"
	scenario "5:false 0:true" 0 2 "exit 5, nothing sent: retried"
	scenario "5:false:compact 0:true" 0 2 "exit 5, nothing sent, compact JSON: retried"
	scenario "5:true" 5 1 "exit 5 after the deploy was sent: not retried"
	scenario "5:true:compact" 5 1 "exit 5 after the deploy was sent, compact JSON: not retried"
	scenario "5:none" 5 1 "exit 5 with no result file: not retried"
	scenario "5:false 5:false 5:false" 5 2 "exit 5 again and again: attempts are bounded"
	scenario "2:none" 2 1 "bad input, no report written"
	# Stopped by Jenkins (timeout, Stop): the shell outlives the SIGTERM
	# long enough to print the description line from serfdeploy's report.
	scenario "4:true:term 0:true" 4 1 "SIGTERM from Jenkins: not retried, described"
	checks=$((checks + 1))
	grep -qxF 'serfdeploy result: interrupted: the runs go on (exit 4); deploy id fake-1' "$ws/log" ||
		fail "job $job: stopped by SIGTERM, the step printed no description line:$(tail -n 3 "$ws/log" | sed 's/^/ | /')"
	scenario "5:false:term 0:true" 5 1 "SIGTERM, then exit 5 before firing: not retried"
	# The blast-radius guard: MAX_TARGETS (empty: 50; 0 only when given),
	# BATCH and CANARY reach serfdeploy; a value that is not a number fails
	# before it runs.
	scenario "0:true" 0 1 "default parameters"
	ran_with "--max-targets 50 --timeout" "MAX_TARGETS unset: 50, no --batch or --canary"
	scenario "0:true" 0 1 "MAX_TARGETS empty" MAX_TARGETS=
	ran_with "--max-targets 50 --timeout" "MAX_TARGETS empty: 50"
	scenario "0:true" 0 1 "MAX_TARGETS 0" MAX_TARGETS=0
	ran_with "--max-targets 0 --timeout" "MAX_TARGETS 0: no limit, said so"
	scenario "0:true" 0 1 "blast-radius parameters" MAX_TARGETS=5 BATCH=10% CANARY=1 TARGET_TAG='fqdn=web-0[12]'
	ran_with "--tag fqdn=web-0[12] --max-targets 5 --batch 10% --canary 1 --timeout" "MAX_TARGETS, BATCH, CANARY"
	scenario "0:true" 2 0 "MAX_TARGETS not a number" MAX_TARGETS=all
	scenario "0:true" 2 0 "BATCH neither N nor N%" BATCH=1%0
	scenario "0:true" 2 0 "CANARY not a number" CANARY=one
	# A retry that succeeds: both attempts must be the same request (one
	# deploy id, or serfdeploy's own each time), and the step must print the
	# line the description-setter publisher makes the build description of.
	checks=$((checks + 2))
	ws=$tmp/ws.retry
	mkdir -p "$ws"
	(cd "$ws" && FAKE_DIR=$ws FAKE_PLAN="5:false 0:true" PATH="$tmp/bin:$PATH" \
		MODULE=profile_web REF=v1 TARGET_TAG=segment=qa BUILD_TAG=jenkins-release-7 \
		sh "$step_sh") >"$ws/log" 2>&1 || true
	want='serfdeploy result: 1 finished: said "hi" <ok> (exit 0); deploy id fake-2'
	if ! grep -qxF "$want" "$ws/log"; then
		fail "job $job: the step should print the build description line '$want' (outcome line and deploy id); it printed:$(tail -n 3 "$ws/log" | sed 's/^/ | /')"
	fi
	if [ "$(sort -u "$ws/args" | wc -l)" -ne 1 ]; then
		fail "job $job: the two attempts ran with different arguments (a deploy id per attempt hides the deploy from \`serfdeploy report\`):$(sort -u "$ws/args" | sed 's/^/ | /')"
	fi
done
checks=$((checks + 1))
[ "${found:-}" ] || fail "no job in $dir/jjb has a shell step running serfdeploy deploy"

# With serf_rpc_credential set in the project, that credential is bound to
# SERF_RPC_AUTH.
checks=$((checks + 1))
cp -R "$dir/jjb" "$tmp/jjb-rpc"
for yaml in "$tmp"/jjb-rpc/*.yaml; do
	sed "s/^\(    serf_rpc_credential:\) ''\$/\1 serf-rpc-auth/" "$yaml" >"$yaml.new" && mv "$yaml.new" "$yaml"
done
if ! jenkins-jobs test "$tmp/jjb-rpc" -o "$tmp/xml-rpc" >"$tmp/jjb-rpc.log" 2>&1 ||
	! grep -A1 '<variable>SERF_RPC_AUTH</variable>' "$tmp"/xml-rpc/* | grep -q '<credentialsId>serf-rpc-auth</credentialsId>'; then
	fail "jjb: with serf_rpc_credential: serf-rpc-auth in the project, that credential is not bound to SERF_RPC_AUTH"
fi

# Each file names the plugins it needs: without one, Jenkins drops that
# part of the job, silently.
for plugin in ws-cleanup timestamper build-timeout credentials-binding junit description-setter htmlpublisher; do
	need "$dir/jjb/serfdeploy-release.yaml" "^#.*$plugin" "the header does not name the required plugin $plugin"
done
for plugin in 'Pipeline: Basic Steps' 'JUnit' 'Credentials Binding' 'HTML Publisher'; do
	need "$dir/Jenkinsfile" "^//.*$plugin" "the header does not name the required plugin $plugin"
	need "$dir/vars/serfDeploy.groovy" "^//.*$plugin" "the header does not name the required plugin $plugin"
done

echo "== Groovy syntax"
checks=$((checks + 1))
groovy "$root/scripts/groovy-syntax.groovy" "$dir/Jenkinsfile" "$dir"/vars/*.groovy || fail "Groovy syntax"

echo "== Jenkinsfile"
need "$jenkinsfile" 'disableConcurrentBuilds\(\)' "no disableConcurrentBuilds(): two deploys at once fight over the same nodes"
need "$jenkinsfile" 'fired' "the retry of exit 5 does not look at \"fired\" in the result file: after a partial send, a retry races the first deploy"
need "$jenkinsfile" 'withCredentials' "no withCredentials for the logging service"
need "$jenkinsfile" 'SERFDEPLOY_LOG_(USER|PASSWORD|TOKEN)' "no logging-service credential bound to SERFDEPLOY_LOG_USER/PASSWORD or SERFDEPLOY_LOG_TOKEN"
need "$jenkinsfile" 'deleteDir\(\)' "out/ is not cleared before the run: a previous build's report could be published"
need "$jenkinsfile" 'currentBuild\.description' "no build description (outcome line and deploy id)"
forbid "$jenkinsfile" 'readFile\(.*summary' "the build description is cut from the Markdown summary; use the result file's outcome line and id, as plain text"
forbid "$jenkinsfile" '--id[^a-z].*(attempt|retry)' "a deploy id per attempt hides the deploy from \`serfdeploy report\`"
budget "Jenkinsfile" \
	"$(sed -n "s/.*timeout(time: *\([0-9][0-9]*\), *unit: *'MINUTES').*/\1/p" "$jenkinsfile" | head -n 1)" \
	"$(sed -n 's/.*--timeout \([0-9][0-9]*\)m.*/\1/p' "$jenkinsfile" | one_value)" \
	"$(attempts_in_jenkinsfile "$jenkinsfile")"

echo "== vars/serfDeploy.groovy"
need "$step" 'finally' "no finally: an abort or a timeout skips publishing the reports"
after "$step" '^[[:space:]]*[}][[:space:]]*finally' 'junit' "junit is not published in the finally block"
after "$step" '^[[:space:]]*[}][[:space:]]*finally' 'archiveArtifacts' "archiveArtifacts is not in the finally block"
forbid "$step" 'retries[[:space:]]*\?:' "'args.retries ?: N' turns retries: 0 into N"
need "$step" 'args\.id' "no id: argument"
need "$step" 'fired' "the retry of exit 5 does not look at \"fired\" in the result file"
need "$step" 'deleteDir\(\)' "the output folder is not cleared first"
need "$step" 'currentBuild\.description' "no build description (outcome line and deploy id)"
forbid "$step" "BUILD_TAG[^a-z]*\+[^a-z]*'-retry" "a deploy id per attempt hides the deploy from \`serfdeploy report\`"

# The Groovy logic itself, with stubbed steps: on the files, every case
# must pass; on each mutant (one defect put into one file), the harness
# must fail, or it does not test that logic.
echo "== Groovy logic (jenkins/test/harness.groovy)"
harness=$root/jenkins/test/harness.groovy
checks=$((checks + 1))
groovy "$harness" -q "$dir" || fail "jenkins/test/harness.groovy failed on $dir"
killed=0
mutants=0
for file in Jenkinsfile vars/serfDeploy.groovy; do
	for mutation in 's/fired != false/fired == false/' 's/code == 4)/code == 40)/'; do
		checks=$((checks + 1))
		mutants=$((mutants + 1))
		rm -rf "$tmp/mutant"
		cp -R "$dir" "$tmp/mutant"
		sed "$mutation" "$dir/$file" >"$tmp/mutant/$file"
		if cmp -s "$dir/$file" "$tmp/mutant/$file"; then
			fail "mutant $file '$mutation': the mutation matches nothing; update it to the code"
		elif groovy "$harness" -q "$tmp/mutant" >"$tmp/mutant.log" 2>&1; then
			fail "mutant $file '$mutation': the harness passed it; it does not test that logic"
		elif ! grep -q '^harness: [0-9]* of [0-9]* cases passed' "$tmp/mutant.log"; then
			# A crash is no proof that a case caught the defect.
			fail "mutant $file '$mutation': the harness did not run its cases:$(tail -n 3 "$tmp/mutant.log" | sed 's/^/ | /')"
		else
			killed=$((killed + 1))
		fi
	done
done
echo "check-jenkins: harness killed $killed of $mutants mutants ('fired' inverted, 'code == 4' broken; Jenkinsfile, vars/serfDeploy.groovy)"

if [ "$problems" -gt 0 ]; then
	echo "check-jenkins: $problems of $checks checks failed ($dir)" >&2
	exit 1
fi
echo "check-jenkins: all $checks checks passed ($dir)"
