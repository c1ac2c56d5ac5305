// Shared-library step: serfDeploy(module: 'profile_web', ref: 'v1.2.0', tags: ['segment': 'qa'])
//
// Runs `serfdeploy deploy`, publishes its JUnit report, archives the JSON
// result and returns serfdeploy's exit code. It fails the build on exit 1, 2
// and 3, marks it unstable on 4, and retries exit 5 (infrastructure) up to
// `retries` times, because only that one is worth another try.
def call(Map args = [:]) {
    String module = args.module ?: error('serfDeploy: module is required')
    String ref = args.ref ?: error('serfDeploy: ref is required')
    Map<String, String> tags = (args.tags ?: [:]) as Map<String, String>
    List<String> nodes = (args.nodes ?: []) as List<String>
    String environment = args.environment ?: ''
    String timeout = args.timeout ?: '30m'
    int retries = (args.retries ?: 1) as int
    String out = args.outDir ?: 'out'

    List<String> cmd = ['serfdeploy', 'deploy', '--module', module, '--ref', ref, '--timeout', timeout,
                        '--junit', "${out}/serfdeploy-junit.xml",
                        '--summary-file', "${out}/serfdeploy-summary.md",
                        '--result-file', "${out}/serfdeploy-result.json"]
    tags.each { k, v -> cmd += ['--tag', "${k}=${v}"] }
    nodes.each { n -> cmd += ['--node', n] }
    if (environment) {
        cmd += ['--environment', environment]
    }
    String line = cmd.collect { shellQuote(it as String) }.join(' ')

    int code = sh(returnStatus: true, script: line)
    int attempt = 0
    while (code == 5 && attempt < retries) {
        attempt++
        echo "serfDeploy: infrastructure problem (exit 5), retry ${attempt} of ${retries}"
        sleep(time: 15, unit: 'SECONDS')
        code = sh(returnStatus: true, script: line + " --id ${shellQuote(env.BUILD_TAG + '-retry' + attempt)}")
    }
    junit allowEmptyResults: true, testResults: "${out}/serfdeploy-junit.xml"
    archiveArtifacts allowEmptyArchive: true, artifacts: "${out}/serfdeploy-*"
    if (code == 4) {
        unstable("serfDeploy: not every node finished (exit 4)")
    } else if (code != 0) {
        error("serfDeploy: serfdeploy exited ${code}; see the summary above")
    }
    return code
}

private static String shellQuote(String s) {
    return "'" + s.replace("'", "'\\''") + "'"
}
