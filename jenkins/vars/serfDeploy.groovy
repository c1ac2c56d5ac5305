// Shared-library step: runs `serfdeploy deploy` and gates the build on its
// exit code (README, "Exit codes").
//
// Usage. Register this repository in Manage Jenkins > System > Global
// Trusted Pipeline Libraries (name 'serfdeploy', Library Path 'jenkins/'
// since vars/ lives there), then in a Jenkinsfile:
//
//   @Library('serfdeploy') _
//   ...
//   steps {
//     script {
//       withCredentials([usernamePassword(credentialsId: 'serfdeploy-loki',
//                                         usernameVariable: 'SERFDEPLOY_LOG_USER',
//                                         passwordVariable: 'SERFDEPLOY_LOG_PASSWORD')]) {
//         // retries + 1 attempts x (timeout + 2 minutes) + 1 minute
//         timeout(time: 70, unit: 'MINUTES') {
//           int code = serfDeploy(module: 'profile_web', ref: params.REF ?: 'main',
//                                 tags: [segment: 'qa'], maxTargets: 50,
//                                 batch: '25%', canary: 1,
//                                 logUrl: 'http://loki.internal:3100')
//         }
//       }
//     }
//   }
//
// Arguments: module and ref (required); tags (map key -> regexp), nodes (a
// name or a list of names), environment, id (deploy id; default:
// serfdeploy's own, BUILD_TAG plus a suffix), timeout (serfdeploy
// --timeout, default '30m'), retries (how many more tries an exit 5 gets,
// default 1; 0 means none), outDir (default 'out'), logUrl (below), and the
// safety switches of serfdeploy deploy:
//   maxTargets  refuse to start (exit 2, nothing sent) when more nodes
//               match; default 50, 0 means no limit (say so explicitly)
//   batch       rolling deploy in batches of N or 'N%' of the targets
//   canary      a first batch of N targets before the rest
//   noop        Puppet runs with --noop; exit 6 (pending changes) then marks
//               the build UNSTABLE and the step returns 6
//   dryRun      list targets and payload, send nothing
//   puppetTags  Puppet's --tags: 'a,b' or ['a', 'b']
//
// The logging service: logUrl, or SERFDEPLOY_LOG_URL in the environment
// (withEnv), must be set for the summary to show each failed resource's
// message; without either the step says so and serfdeploy reports from the
// nodes' own answers only.
//
// Exit code -> build:
//   0        success; the step returns 0
//   4        incomplete (serfdeploy's own timeout, interrupted, lost nodes):
//            the build is marked UNSTABLE and the step returns 4
//   6        with noop only: pending changes; UNSTABLE, returns 6
//   1, 2, 3  (and anything else) the step fails the build with error()
//   5        infrastructure: tried again up to `retries` times, but only when
//            the result file says nothing was sent to the fleet
//            ("fired": false); a second deploy after a partial one would race
//            it. A 5 left after that fails the build with error().
// So the step returns the exit code whenever it does not fail the build.
// A timeout() around the step (or Stop) ends the build ABORTED, as in the
// Jenkinsfile and the JJB job: the step does not catch the interruption.
//
// Whatever happens (even an abort or a timeout() around the step), the JUnit
// report and the deploy timeline (HTML) are published, the reports in
// outDir are archived and the build
// description is set to one plain-text line: the outcome line and the deploy
// id, for `serfdeploy report ID` (or `serfdeploy watch ID` after an abort).
//
// outDir is emptied first so that a previous build's report is never
// published: give the step a folder of its own.
//
// Credentials are the caller's: wrap the step in withCredentials binding
// SERFDEPLOY_LOG_USER/SERFDEPLOY_LOG_PASSWORD (or SERFDEPLOY_LOG_TOKEN), and
// SERF_RPC_AUTH only if the serf agent has rpc_auth (serf refuses any key
// when it has none: exit 5). A timeout() around the step should allow
// (retries + 1) x (timeout + 2 minutes).
//
// Required plugins: Pipeline: Basic Steps, Pipeline: Nodes and Processes
// (sh), JUnit, HTML Publisher (publishHTML), Pipeline: Groovy Libraries
// (@Library); Credentials Binding for the caller's withCredentials.
def call(Map args = [:]) {
    String module = args.module ?: error('serfDeploy: module is required')
    String ref = args.ref ?: error('serfDeploy: ref is required')
    if (args.tags != null && !(args.tags instanceof Map)) {
        error("serfDeploy: tags must be a map of key to regexp, e.g. [segment: 'qa'], not '${args.tags}'")
    }
    Map tags = args.tags ?: [:]
    // nodes: 'web-01' is one node, not the list of its letters.
    List<String> nodes = names(args.nodes)
    String environment = args.environment ?: ''
    String id = args.id ?: ''
    String timeout = args.timeout ?: '30m'
    // Not `args.retries ?: 1`: that would turn an explicit 0 into 1; the same
    // for maxTargets, where 0 means no limit.
    int retries = args.retries == null ? 1 : args.retries as int
    String maxTargets = args.maxTargets == null ? '50' : args.maxTargets.toString()
    String batch = args.batch == null ? '' : args.batch.toString()
    String canary = args.canary == null ? '' : args.canary.toString()
    String puppetTags = names(args.puppetTags).join(',')
    String logUrl = args.logUrl ?: ''
    String out = args.outDir ?: 'out'
    if (retries < 0) {
        error("serfDeploy: retries must be 0 or more, not ${retries}")
    }
    if (!(maxTargets ==~ /[0-9]+/)) {
        error("serfDeploy: maxTargets must be a whole number (0: no limit), not '${maxTargets}'")
    }
    if (!(batch ==~ /([0-9]+%?)?/)) {
        error("serfDeploy: batch must be N or 'N%', not '${batch}'")
    }
    if (!(canary ==~ /([0-9]+)?/)) {
        error("serfDeploy: canary must be a whole number, not '${canary}'")
    }
    if (!isSubfolder(out)) {
        // The folder is deleted below: never let that be the workspace itself.
        error("serfDeploy: outDir must be a folder inside the workspace, not '${out}'")
    }
    if (!logUrl && !env.SERFDEPLOY_LOG_URL) {
        echo('serfDeploy: no logUrl and no SERFDEPLOY_LOG_URL: no logging service, so the summary ' +
             "has the nodes' answers only, without failed resources' messages")
    }
    String resultFile = "${out}/serfdeploy-result.json"

    List<String> cmd = ['serfdeploy', 'deploy', '--module', module, '--ref', ref, '--timeout', timeout,
                        '--max-targets', maxTargets,
                        '--junit', "${out}/serfdeploy-junit.xml",
                        '--summary-file', "${out}/serfdeploy-summary.md",
                        '--result-file', resultFile,
                        '--html-report', "${out}/serfdeploy-timeline.html"]
    tags.each { k, v -> cmd += ['--tag', "${k}=${v}"] }
    nodes.each { n -> cmd += ['--node', n] }
    if (environment) {
        cmd += ['--environment', environment]
    }
    if (id) {
        // The same id for every attempt: a retry only follows an attempt
        // that sent nothing, and `serfdeploy report ID` then finds the runs.
        cmd += ['--id', id]
    }
    if (batch) {
        cmd += ['--batch', batch]
    }
    if (canary) {
        cmd += ['--canary', canary]
    }
    if (args.noop) {
        cmd += ['--noop']
    }
    if (args.dryRun) {
        cmd += ['--dry-run']
    }
    if (puppetTags) {
        cmd += ['--puppet-tags', puppetTags]
    }
    // The logging URL goes in the environment, not on the command line: a
    // password in it would show in the console's echo and in `ps`.
    List logEnv = logUrl ? ["SERFDEPLOY_LOG_URL=${logUrl}".toString()] : []
    String line = cmd.collect { shellQuote(it as String) }.join(' ')

    int code = -1
    int attempt = 1
    try {
        while (true) {
            // Clear before every attempt: what gets published is this
            // attempt's report, never an earlier attempt's or build's.
            dir(out) { deleteDir() }
            withEnv(logEnv) {
                code = sh(returnStatus: true, script: line)
            }
            if (code != 5 || attempt > retries) {
                break
            }
            Map result = readResult(resultFile)
            if (result == null || result.fired != false) {
                echo('serfDeploy: exit 5, and the result file does not say that nothing was sent: ' +
                     'not retried, a second deploy could race the first')
                break
            }
            echo("serfDeploy: infrastructure problem before anything was sent (exit 5): " +
                 "${result.error ?: result.outcome}; retry ${attempt} of ${retries} in 15 seconds")
            sleep(time: 15, unit: 'SECONDS')
            attempt++
        }
    } finally {
        // Also on an abort or a timeout: serfdeploy writes its reports when
        // it is interrupted (exit 4), and they say how far the deploy got.
        archiveArtifacts allowEmptyArchive: true, artifacts: "${out}/serfdeploy-*"
        junit allowEmptyResults: true, testResults: "${out}/serfdeploy-junit.xml"
        // allowMissing: an early failure (a missing binary) leaves none.
        publishHTML(target: [reportName: 'Deploy timeline', reportDir: out, reportFiles: 'serfdeploy-timeline.html',
                             keepAll: true, alwaysLinkToLastBuild: true, allowMissing: true])
        currentBuild.description = describe(readResult(resultFile), code)
    }

    if (code == 0) {
        return 0
    }
    if (code == 4) {
        unstable("serfDeploy: not every node finished (exit 4)")
        return 4
    }
    if (code == 6 && args.noop) {
        unstable("serfDeploy: pending changes found with noop (exit 6)")
        return 6
    }
    error("serfDeploy: serfdeploy exited ${code}; see the summary above")
}

// The few fields of serfdeploy's --result-file the step needs, or null when
// there is no readable file (serfdeploy did not start, or was killed).
private Map readResult(String path) {
    if (!fileExists(path)) {
        return null
    }
    try {
        return resultFields(readFile(path))
    } catch (Exception e) {
        echo("serfDeploy: cannot read ${path}: ${e.message}")
        return null
    }
}

// JsonSlurper's maps are not serializable, which a pipeline needs between
// steps: parse outside CPS and keep plain values only.
@NonCPS
private static Map resultFields(String json) {
    def r = new groovy.json.JsonSlurper().parseText(json)
    return [id: r.id, outcome: r.outcome, error: r.error, fired: r.fired, exit: r.exit_code]
}

// One plain-text line: the outcome line and the deploy id.
private static String describe(Map result, int code) {
    if (result == null) {
        return code < 0 ? 'serfdeploy did not finish and left no readable result file'
                        : "serfdeploy exited ${code} without a readable result file"
    }
    String what = result.outcome ?: result.error
    if (!what) {
        what = "serfdeploy exited ${result.exit}"
    } else if (!what.contains('(exit ')) {
        what += " (exit ${result.exit})"
    }
    return "${what.trim()}; deploy id ${result.id}"
}

// A name or a list of names as a list of strings: a string is one name.
@NonCPS
private static List<String> names(value) {
    if (value == null) {
        return []
    }
    if (value instanceof CharSequence) {
        return value.toString() ? [value.toString()] : []
    }
    return value.collect { it.toString() }
}

// True for a relative path below the workspace (no '.', '..' or empty part).
@NonCPS
private static boolean isSubfolder(String path) {
    if (path.startsWith('/')) {
        return false
    }
    for (String part : path.split('/')) {
        if (part in ['', '.', '..']) {
            return false
        }
    }
    return true
}

private static String shellQuote(String s) {
    return "'" + s.replace("'", "'\\''") + "'"
}
