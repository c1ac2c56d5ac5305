#!/bin/sh
# The serfdeploy shell step of jenkins/jjb/serfdeploy-release.yaml (kept in
# a file of its own so that the job template does not read its braces as
# template fields, and so that shellcheck can read it).
#
# Exit codes: 0 ok, 1 a run failed, 2 usage (also more targets than
# MAX_TARGETS), 3 nothing matched, 4 incomplete (unstable-return),
# 5 infrastructure. Only 5 is worth another try, and only when the result
# file says nothing was sent to the fleet ("fired": false): a second deploy
# after a partial one would race it.
#
# Parameters (the job's): MODULE, REF, TARGET_TAG; MAX_TARGETS (empty: 50;
# 0: no limit), BATCH (N or N%), CANARY (N), both empty: not passed.
#
# No --id: serfdeploy names the deploy BUILD_TAG plus a suffix of its own;
# the last line (the build description) shows it, for `serfdeploy report ID`
# (or `serfdeploy watch ID` after the build was stopped).
#
# Time budget: 2 attempts x (--timeout 30m + ~2m around the watch: serf and
# logging-service checks, --log-wait 30s) + the 15 s pause = 64.25 minutes,
# inside the 70-minute build timeout. Change one, change the others.
SERFDEPLOY_LOG_URL=http://loki.internal:3100
export SERFDEPLOY_LOG_URL
result=out/serfdeploy-result.json

# An empty out/ first, also when a parameter is refused below: the
# publishers must never find a previous build's report.
rm -rf out && mkdir out

# The blast-radius guard: a wrong TARGET_TAG (fqdn=.*) must not reach the
# whole fleet. Checked here so that a typo fails with its name.
MAX_TARGETS=${MAX_TARGETS:-50}
bad=
case $MAX_TARGETS in *[!0-9]*) bad="MAX_TARGETS must be a whole number (0: no limit), not '$MAX_TARGETS'" ;; esac
case ${BATCH:-} in *[!0-9%]* | %* | *%?*) bad="BATCH must be N or N%, or empty, not '$BATCH'" ;; esac
case ${CANARY:-} in *[!0-9]*) bad="CANARY must be a whole number, or empty, not '$CANARY'" ;; esac
if [ -n "$bad" ]; then
  printf 'serfdeploy result: %s\n' "$bad"
  exit 2
fi

# Jenkins stops a build (its timeout, or Stop) with SIGTERM to every process
# of the step. serfdeploy then writes its reports and exits 4; without this
# trap the shell would die at once and print no description line.
stopped=
trap 'stopped=1' TERM

attempts=2
attempt=1
while :; do
  # An empty out/ before every attempt: what gets published is this
  # attempt's report, never an earlier attempt's or build's.
  rm -rf out && mkdir out
  # BATCH and CANARY are passed only when set.
  serfdeploy deploy --module "$MODULE" --ref "$REF" --tag "$TARGET_TAG" \
    --max-targets "$MAX_TARGETS" ${BATCH:+--batch "$BATCH"} ${CANARY:+--canary "$CANARY"} \
    --timeout 30m \
    --junit out/serfdeploy-junit.xml \
    --summary-file out/serfdeploy-summary.md \
    --result-file "$result" \
    --html-report out/serfdeploy-timeline.html
  code=$?
  if [ "$code" -ne 5 ] || [ "$attempt" -ge "$attempts" ] || [ -n "$stopped" ]; then
    break
  fi
  # jq may not be on the agent: sed reads "fired" whether the JSON is
  # indented (one field a line) or compact. Empty: no file.
  fired=$(sed -n 's/.*"fired": *\([a-z]*\).*/\1/p' "$result" 2>/dev/null)
  if [ "$fired" != false ]; then
    echo "serfdeploy: exit 5, and the result file does not say that nothing was sent: not retried, a second deploy could race the first"
    break
  fi
  attempt=$((attempt + 1))
  echo "serfdeploy: infrastructure problem before anything was sent (exit 5); attempt $attempt of $attempts in 15 seconds"
  sleep 15
  if [ -n "$stopped" ]; then
    break
  fi
done

# A top-level string field of the result file, JSON escapes undone.
field() {
  sed -n 's/.*"'"$1"'": *"\(\([^"\\]*\\.\)*[^"\\]*\)".*/\1/p' "$result" 2>/dev/null | head -n 1 |
    sed 's/\\u003c/</g; s/\\u003e/>/g; s/\\u0026/\&/g; s/\\"/"/g; s/\\\\/\\/g'
}
# The build description (description-setter), plain text: the outcome line
# and the deploy id.
id=$(field id)
outcome=$(field outcome)
[ -n "$outcome" ] || outcome=$(field error)
case $outcome in
  *"(exit "*) ;;
  *) outcome="${outcome:+$outcome }(exit $code)" ;;
esac
if [ -n "$id" ]; then
  printf 'serfdeploy result: %s; deploy id %s\n' "$outcome" "$id"
else
  printf 'serfdeploy result: exit %s without a readable result file\n' "$code"
fi
exit "$code"
