// Shared-library step: runs `serfdeploy deploy` and gates the build on its
// exit code (README, "Exit codes").
//
//   int code = serfDeploy(module: 'profile_web', ref: 'v1.2.0', tags: ['segment': 'qa'])
//
// Arguments: module and ref (required); tags (map key -> regexp), nodes
// (list), environment, id (deploy id; default: serfdeploy's own, BUILD_TAG
// plus a suffix), timeout (serfdeploy --timeout, default '30m'), retries (how
// many more tries an exit 5 gets, default 1; 0 means none), outDir (default
// 'out').
//
// Exit code -> build:
//   0        success; the step returns 0
//   4        incomplete (timeout, interrupted, lost nodes): the build is marked
//            UNSTABLE and the step returns 4
//   1, 2, 3  (and anything else) the step fails the build with error()
//   5        infrastructure: tried again up to `retries` times, but only when
//            the result file says nothing was sent to the fleet
//            ("fired": false); a second deploy after a partial one would race
//            it. A 5 left after that fails the build with error().
// So the step returns the exit code whenever it does not fail the build.
//
// Whatever happens (even an abort or a timeout() around the step), the JUnit
// report is published, the reports in outDir are archived and the build
// description is set to one plain-text line: the outcome line and the deploy
// id, for `serfdeploy report ID`.
//
// outDir is emptied first so that a previous build's report is never
// published: give the step a folder of its own.
//
// Credentials are the caller's: wrap the step in withCredentials binding
// SERFDEPLOY_LOG_USER/SERFDEPLOY_LOG_PASSWORD (or SERFDEPLOY_LOG_TOKEN), and
// SERF_RPC_AUTH if the serf agent wants a key. A timeout() around the step
// should allow (retries + 1) x (timeout + 2 minutes).
def call(Map args = [:]) {
    String module = args.module ?: error('serfDeploy: module is required')
    String ref = args.ref ?: error('serfDeploy: ref is required')
    Map<String, String> tags = (args.tags ?: [:]) as Map<String, String>
    List<String> nodes = (args.nodes ?: []) as List<String>
    String environment = args.environment ?: ''
    String id = args.id ?: ''
    String timeout = args.timeout ?: '30m'
    // Not `args.retries ?: 1`: that would turn an explicit 0 into 1.
    int retries = args.retries == null ? 1 : args.retries as int
    String out = args.outDir ?: 'out'
    if (retries < 0) {
        error("serfDeploy: retries must be 0 or more, not ${retries}")
    }
    if (!isSubfolder(out)) {
        // The folder is deleted below: never let that be the workspace itself.
        error("serfDeploy: outDir must be a folder inside the workspace, not '${out}'")
    }
    String resultFile = "${out}/serfdeploy-result.json"

    List<String> cmd = ['serfdeploy', 'deploy', '--module', module, '--ref', ref, '--timeout', timeout,
                        '--junit', "${out}/serfdeploy-junit.xml",
                        '--summary-file', "${out}/serfdeploy-summary.md",
                        '--result-file', resultFile]
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
    String line = cmd.collect { shellQuote(it as String) }.join(' ')

    int code = -1
    int attempt = 1
    try {
        while (true) {
            // Clear before every attempt: what gets published is this
            // attempt's report, never an earlier attempt's or build's.
            dir(out) { deleteDir() }
            code = sh(returnStatus: true, script: line)
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
        currentBuild.description = describe(readResult(resultFile), code)
    }

    if (code == 0) {
        return 0
    }
    if (code == 4) {
        unstable("serfDeploy: not every node finished (exit 4)")
        return 4
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
