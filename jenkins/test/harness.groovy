// Runs the Groovy logic of jenkins/Jenkinsfile and jenkins/vars/serfDeploy.groovy
// outside Jenkins and checks how they gate the build on serfdeploy's exit
// codes: build result, description, published reports, retries, and the
// exact serfdeploy command line.
//
// Usage: groovy jenkins/test/harness.groovy [-q] [JENKINS_DIR]
//   -q: print only failing cases and the summary line.
// Exits 0 when every case passes, 1 otherwise. scripts/check-jenkins.sh
// runs it on the real files and on mutants that must fail.
//
// How Jenkins is stood in for (JenkinsScript below): both files are compiled
// with a base class that provides the steps they call. The declarative
// pipeline {} block is run as Jenkins would in outline: its stages, then
// post { always } and post { cleanup } whatever the stages threw; error()
// makes the build FAILURE, an interruption (what timeout() or Stop throws)
// ABORTED, unstable() UNSTABLE. `sh` runs the real script with /bin/sh -xe,
// with only the build's environment (withEnv, withCredentials), against a
// fake serfdeploy that records its arguments and exits with the code the
// case planned; readFile/fileExists then return the result file the case
// planned for that attempt, and only at the path given to --result-file.
import groovy.json.JsonOutput
import org.codehaus.groovy.control.CompilerConfiguration

// What error() throws (hudson.AbortException in Jenkins): FAILURE.
class StepError extends RuntimeException {
    StepError(String m) { super(m) }
}

// What a timeout() firing or Stop throws into the running step
// (FlowInterruptedException in Jenkins): ABORTED.
class Interrupted extends RuntimeException {
    Interrupted(String m) { super(m) }
}

// One run of the fake serfdeploy: its exit code, the --result-file it leaves
// (null: none), and whether the build's timeout fires while it runs.
class Attempt {
    int code
    Map result
    boolean interrupt
}

// currentBuild: result only ever gets worse, as in Jenkins.
class CurrentBuild {
    static final List<String> ORDER = ['SUCCESS', 'UNSTABLE', 'FAILURE', 'NOT_BUILT', 'ABORTED']
    String result
    String description

    void setResult(String r) {
        if (result == null || ORDER.indexOf(r) > ORDER.indexOf(result)) {
            result = r
        }
    }

    String getResult() { result }
}

// One simulated build: what a case sets up, and what the files did.
class Build {
    Map params = [:]
    Map<String, String> env = [:]
    List<Attempt> plan = []
    File work
    File fakeBin

    CurrentBuild currentBuild = new CurrentBuild()
    List<Map> calls = []        // sh runs: argv (null: serfdeploy not run), env, output
    List<Map> bound = []        // credentials bound: id, variables
    List<String> echoes = []
    List<Map> sleeps = []
    List<Map> junits = []
    List<Map> archives = []
    List<Map> htmls = []        // publishHTML targets
    List<String> unstables = []
    List<String> errors = []
    List<Map> clears = []       // deleteDir: the folder, and how many sh runs came before
    List<String> dirs = []
    Map paramDefaults = [:]     // parameters {} of the Jenkinsfile
    Integer timeoutMinutes      // options { timeout() } of the Jenkinsfile
    Closure stages
    List<Closure> always = []
    List<Closure> cleanup = []
    List<Throwable> unexpected = []
    def returned

    String getResult() { currentBuild.result ?: 'SUCCESS' }

    // The argument after flag in the last serfdeploy run, or null.
    String lastArg(String flag) {
        List argv = calls ? calls[-1].argv : null
        int i = argv ? argv.indexOf(flag) : -1
        return i >= 0 && i + 1 < argv.size() ? argv[i + 1] : null
    }

    String path(String p) {
        return (dirs + [p]).join('/')
    }

    // Ends a build the way Jenkins does when a step throws.
    void ended(Throwable t) {
        if (t instanceof StepError) {
            currentBuild.setResult('FAILURE')
        } else if (t instanceof Interrupted) {
            currentBuild.setResult('ABORTED')
        } else {
            // A missing stub, a typo, a Groovy error: never a pass.
            unexpected << t
            currentBuild.setResult('FAILURE')
        }
    }
}

abstract class JenkinsScript extends Script {
    Build b

    // Global variables.
    Map getParams() { b.params }
    Map getEnv() { b.env }
    CurrentBuild getCurrentBuild() { b.currentBuild }

    // Declarative pipeline: stages and post run after the block is read.
    void pipeline(Closure body) {
        body()
        try {
            if (b.stages) {
                b.stages()
            }
        } catch (Throwable t) {
            b.ended(t)
        }
        for (Closure c : b.always + b.cleanup) {
            try {
                c()
            } catch (Throwable t) {
                b.unexpected << t
            }
        }
    }
    void agent(Closure c) { c() }
    void label(String l) { }
    void parameters(Closure c) { c() }
    void options(Closure c) { c() }
    void disableConcurrentBuilds() { }
    void environment(Closure c) {
        Map vars = [:]
        c.delegate = vars
        c.resolveStrategy = Closure.DELEGATE_FIRST
        c()
        vars.each { k, v -> b.env[k as String] = v as String }
    }
    void stages(Closure c) { b.stages = c }
    void stage(String name, Closure c) { c() }
    void steps(Closure c) { c() }
    void script(Closure c) { c() }
    void post(Closure c) { c() }
    void always(Closure c) { b.always << c }
    void cleanup(Closure c) { b.cleanup << c }

    // string() is a parameter in parameters {} and a binding in
    // withCredentials.
    Map string(Map m) {
        if (m.containsKey('credentialsId')) {
            return [id: m.credentialsId, vars: [m.variable]]
        }
        b.paramDefaults[m.name] = m.defaultValue
        return m
    }
    Map usernamePassword(Map m) {
        return [id: m.credentialsId, vars: [m.usernameVariable, m.passwordVariable]]
    }
    // environment { X = credentials('id') }
    String credentials(String id) {
        b.bound << [id: id, vars: ['(environment)']]
        return "secret-of-${id}".toString()
    }
    def withCredentials(List bindings, Closure c) {
        Map<String, String> vars = [:]
        bindings.each { m ->
            b.bound << m
            m.vars.each { v -> vars[v] = "secret-of-${m.id}".toString() }
        }
        return scoped(vars, c)
    }
    def withEnv(List vars, Closure c) {
        Map<String, String> m = [:]
        vars.each { String kv ->
            int i = kv.indexOf('=')
            m[kv.substring(0, i)] = kv.substring(i + 1)
        }
        return scoped(m, c)
    }
    private def scoped(Map<String, String> vars, Closure c) {
        Map<String, String> saved = new HashMap(b.env)
        b.env.putAll(vars)
        try {
            return c()
        } finally {
            b.env.clear()
            b.env.putAll(saved)
        }
    }
    // options { timeout(...) } records; a timeout() around steps runs them
    // (a case makes it fire with an interrupting attempt).
    def timeout(Map m, Closure c = null) {
        if (c == null) {
            b.timeoutMinutes = m.time as Integer
            return null
        }
        return c()
    }

    def dir(String d, Closure c) {
        b.dirs << d
        try {
            return c()
        } finally {
            b.dirs.remove(b.dirs.size() - 1)
        }
    }
    void deleteDir() { b.clears << [dir: b.dirs.join('/'), before: b.calls.size()] }
    void echo(String s) { b.echoes << s }
    void sleep(Map m) { b.sleeps << m }
    void junit(Map m) { b.junits << m }
    void archiveArtifacts(Map m) { b.archives << m }
    // HTML Publisher: publishHTML(target: [...]) or publishHTML([...]).
    void publishHTML(Map m) { b.htmls << (m.target ?: m) }
    void unstable(String m) {
        b.unstables << m
        b.currentBuild.setResult('UNSTABLE')
    }
    def error(String m) {
        b.errors << m
        throw new StepError(m)
    }

    def sh(Map m) {
        int n = b.calls.size()
        if (n >= b.plan.size()) {
            throw new IllegalStateException("sh run ${n + 1} times; the case planned ${b.plan.size()}")
        }
        Attempt a = b.plan[n]
        File script = new File(b.work, 'script.sh')
        script.text = m.script
        File argsFile = new File(b.work, 'serfdeploy.args')
        argsFile.delete()
        ProcessBuilder pb = new ProcessBuilder('/bin/sh', '-xe', script.path)
        pb.directory(b.work)
        pb.redirectErrorStream(true)
        Map<String, String> penv = pb.environment()
        penv.clear()
        penv.putAll(b.env)
        penv.PATH = "${b.fakeBin.path}:/usr/bin:/bin".toString()
        penv.FAKE_ARGS = argsFile.path
        penv.FAKE_CODE = a.code as String
        Process p = pb.start()
        String output = p.inputStream.text
        int code = p.waitFor()
        b.calls << [argv: argsFile.exists() ? argsFile.readLines() : null, env: new HashMap(b.env), output: output]
        if (a.interrupt) {
            throw new Interrupted('Timeout has been exceeded')
        }
        if (m.returnStatus) {
            return code
        }
        if (code != 0) {
            throw new StepError("script returned exit code ${code}")
        }
        return null
    }

    // The planned result file exists only where the last run was told to
    // write it.
    boolean fileExists(String p) {
        return b.calls && b.plan[b.calls.size() - 1].result != null && b.path(p) == b.lastArg('--result-file')
    }
    String readFile(String p) {
        if (!fileExists(p)) {
            throw new FileNotFoundException(b.path(p))
        }
        return JsonOutput.prettyPrint(JsonOutput.toJson(b.plan[b.calls.size() - 1].result))
    }
}

// ---- loading the files -----------------------------------------------------

boolean quiet = args.contains('-q')
List<String> rest = args.findAll { it != '-q' }
File jenkinsDir = new File(rest ? rest[0] : new File(getClass().protectionDomain.codeSource.location.path).parentFile.parentFile.path)

File tmp = File.createTempDir()
File fakeBin = new File(tmp, 'bin')
fakeBin.mkdirs()
new File(fakeBin, 'serfdeploy').with {
    // Like serfdeploy, an empty --module, --ref or --tag is a usage error
    // (exit 2), whatever the case planned.
    text = '''#!/bin/sh
: >"$FAKE_ARGS"
for a in "$@"; do printf '%s\\n' "$a" >>"$FAKE_ARGS"; done
prev=
for a in "$@"; do
	case $prev in --module | --ref | --tag) [ -n "$a" ] || exit 2 ;; esac
	prev=$a
done
exit "$FAKE_CODE"
'''
    setExecutable(true)
}

CompilerConfiguration config = new CompilerConfiguration()
config.scriptBaseClass = JenkinsScript.name
GroovyClassLoader loader = new GroovyClassLoader(getClass().classLoader, config)
// @NonCPS is Jenkins' (com.cloudbees.groovy.cps.NonCPS, imported for every
// pipeline script); a stand-in lets the files compile here.
loader.parseClass('@java.lang.annotation.Retention(java.lang.annotation.RetentionPolicy.RUNTIME) @interface NonCPS {}', 'NonCPS.groovy')
Class jenkinsfile = loader.parseClass(new File(jenkinsDir, 'Jenkinsfile').text, 'Jenkinsfile.groovy')
Class stepClass = loader.parseClass(new File(jenkinsDir, 'vars/serfDeploy.groovy').text, 'serfDeploy.groovy')

int buildNo = 0
Closure newBuild = { Closure setup ->
    Build b = new Build(fakeBin: fakeBin, work: new File(tmp, "ws${++buildNo}"))
    b.work.mkdirs()
    // What Jenkins puts in every build's environment; parameters are added
    // by the cases that have them.
    b.env.putAll([BUILD_TAG: 'jenkins-release-7', JOB_NAME: 'release', WORKSPACE: b.work.path])
    setup(b)
    return b
}
// Runs the Jenkinsfile's pipeline for one build.
Closure runPipeline = { Closure setup ->
    Build b = newBuild(setup)
    JenkinsScript s = jenkinsfile.newInstance()
    s.setB(b)  // not s.b = b: a Script sends that to its binding
    s.run()
    return b
}
// Calls the shared step as a pipeline would, and ends the build as Jenkins
// would when it throws.
Closure runStep = { Map stepArgs, Closure setup ->
    Build b = newBuild(setup)
    JenkinsScript s = stepClass.newInstance()
    s.setB(b)  // not s.b = b: a Script sends that to its binding
    try {
        b.returned = s.call(stepArgs)
    } catch (Throwable t) {
        b.ended(t)
    }
    return b
}

// ---- plans and expectations ------------------------------------------------

String deployId = 'jenkins-release-7-k3f9'
// serfdeploy's --result-file (orchestrate.Result): the fields a pipeline
// reads, and a node message quoting "fired" that must not be taken for it.
Closure result = { int code, boolean fired, String outcome ->
    [schema_version: 2, id: deployId, kind: 'deploy', module: 'profile_web', ref: 'main',
     nodes: [[node: 'web-01', state: code == 0 ? 'finished' : 'failed', message: 'said "fired": true']],
     exit_code: code, outcome: outcome, fired: fired]
}
Closure attempt = { int code, Boolean fired, String outcome = null ->
    String o = outcome ?: "1 target: code ${code} (exit ${code})"
    new Attempt(code: code, result: fired == null ? null : result(code, fired, o))
}

int passed = 0
int failed = 0
Closure test = { String name, Closure body ->
    List<String> problems = []
    try {
        body(problems)
    } catch (Throwable t) {
        problems << "harness error: ${t}".toString()
    }
    if (problems) {
        failed++
        println "not ok - ${name}"
        problems.each { println "    ${it}" }
    } else {
        passed++
        if (!quiet) {
            println "ok - ${name}"
        }
    }
}

// What every build must show, whatever the exit code: no surprise
// exception, the reports published from the paths serfdeploy was given,
// out/ cleared before each run, the expected result and description.
Closure common = { List<String> p, Build b, String wantResult, int wantCalls, String wantDescription ->
    b.unexpected.each { p << "unexpected exception: ${it}".toString() }
    if (b.result != wantResult) {
        p << "build result ${b.result}, want ${wantResult} (errors: ${b.errors}, unstable: ${b.unstables})".toString()
    }
    if (b.calls.size() != wantCalls) {
        p << "serfdeploy ran ${b.calls.size()} times, want ${wantCalls}".toString()
    }
    if (wantDescription != null && b.currentBuild.description != wantDescription) {
        p << "description '${b.currentBuild.description}', want '${wantDescription}'".toString()
    }
    if (b.junits.size() != 1) {
        p << "junit published ${b.junits.size()} times, want once whatever happened".toString()
    } else if (b.calls && b.junits[0].testResults != b.lastArg('--junit')) {
        p << "junit reads ${b.junits[0].testResults}, serfdeploy wrote ${b.lastArg('--junit')}".toString()
    }
    if (b.archives.size() != 1) {
        p << "reports archived ${b.archives.size()} times, want once".toString()
    }
    if (b.htmls.size() != 1) {
        p << "the HTML report published ${b.htmls.size()} times, want once whatever happened".toString()
    } else {
        Map h = b.htmls[0]
        if (b.calls && "${h.reportDir}/${h.reportFiles}".toString() != b.lastArg('--html-report')) {
            p << "publishHTML shows ${h.reportDir}/${h.reportFiles}, serfdeploy wrote ${b.lastArg('--html-report')}".toString()
        }
        // allowMissing: a build that fails before serfdeploy runs has no
        // page, and must not fail on that too.
        if (h.allowMissing != true || h.keepAll != true || h.alwaysLinkToLastBuild != true || !h.reportName) {
            p << "publishHTML ${h}: want a reportName, and allowMissing, keepAll and alwaysLinkToLastBuild true".toString()
        }
    }
    b.calls.eachWithIndex { c, i ->
        if (c.argv == null) {
            p << "run ${i + 1}: the sh step did not run serfdeploy: ${c.output}".toString()
        }
        if (!b.clears.any { it.dir == 'out' && it.before == i }) {
            p << "run ${i + 1}: out/ was not cleared just before it".toString()
        }
    }
    if (b.calls.size() > 1 && b.calls*.argv.unique().size() != 1) {
        p << "the attempts ran different commands (one deploy must keep one request): ${b.calls*.argv}".toString()
    }
}

// Has argv the flag followed by value?
Closure pair = { List argv, String flag, String value ->
    argv != null && (0..<argv.size() - 1).any { argv[it] == flag && argv[it + 1] == value }
}

// ---- the exit-code table, for both files -----------------------------------

// [name, plan, build result, runs, sleeps, step's return value]
String interrupted = 'interrupted: SIGTERM; the runs go on: serfdeploy watch jenkins-release-7-k3f9 (exit 4)'
List table = [
    ['exit 0: success', [attempt(0, true)], 'SUCCESS', 1, 0, 0],
    ['exit 1: a run failed', [attempt(1, true)], 'FAILURE', 1, 0, null],
    ['exit 2: bad input, nothing sent', [attempt(2, false)], 'FAILURE', 1, 0, null],
    ['exit 3: nothing matched', [attempt(3, false)], 'FAILURE', 1, 0, null],
    ['exit 4: incomplete', [attempt(4, true)], 'UNSTABLE', 1, 0, 4],
    ['exit 5 after firing: not retried', [attempt(5, true), attempt(0, true)], 'FAILURE', 1, 0, null],
    ['exit 5 without a result file: not retried', [attempt(5, null), attempt(0, true)], 'FAILURE', 1, 0, null],
    ['exit 5 before firing, then 0: retried once', [attempt(5, false), attempt(0, true)], 'SUCCESS', 2, 1, 0],
    ['exit 5 before firing, then 4: retried, unstable', [attempt(5, false), attempt(4, true)], 'UNSTABLE', 2, 1, 4],
    ['exit 5 before firing, again and again: bounded', [attempt(5, false), attempt(5, false), attempt(5, false)], 'FAILURE', 2, 1, null],
    ['exit 6 without noop: failure', [attempt(6, true)], 'FAILURE', 1, 0, null],
    ['build timeout during the run: aborted, reports published, no retry',
     [new Attempt(code: 4, interrupt: true, result: result(4, true, interrupted)), attempt(0, true)], 'ABORTED', 1, 0, null],
]

Closure describeLast = { Build b ->
    Map r = b.calls ? b.plan[b.calls.size() - 1].result : null
    return r == null ? null : "${r.outcome}; deploy id ${r.id}".toString()
}

table.each { row ->
    String name = row[0]
    List plan = row[1]
    test("Jenkinsfile: ${name}") { List p ->
        Build b = runPipeline { Build it -> it.plan = plan }
        common(p, b, row[2], row[3], describeLast(b) ?: 'serfdeploy left no readable result file: it did not run, or was killed')
        if (b.sleeps.size() != row[4]) {
            p << "paused ${b.sleeps.size()} times before a retry, want ${row[4]}".toString()
        }
    }
    test("serfDeploy step: ${name}") { List p ->
        Build b = runStep([module: 'profile_web', ref: 'main', tags: [segment: 'qa']]) { Build it -> it.plan = plan }
        common(p, b, row[2], row[3], describeLast(b) ?: "serfdeploy exited ${plan[0].code} without a readable result file".toString())
        if (b.sleeps.size() != row[4]) {
            p << "paused ${b.sleeps.size()} times before a retry, want ${row[4]}".toString()
        }
        if (b.returned != row[5]) {
            p << "the step returned ${b.returned}, want ${row[5]}".toString()
        }
    }
}

// ---- the Jenkinsfile -------------------------------------------------------

List<String> defaultArgv = ['deploy', '--module', 'profile_web', '--ref', 'main', '--tag', 'segment=qa',
                            '--environment', 'production', '--max-targets', '50', '--timeout', '30m',
                            '--junit', 'out/serfdeploy-junit.xml', '--summary-file', 'out/serfdeploy-summary.md',
                            '--result-file', 'out/serfdeploy-result.json', '--html-report', 'out/serfdeploy-timeline.html']

test('Jenkinsfile: first build (no params, none in the environment): the defaults, no exit 2') { List p ->
    Build b = runPipeline { Build it -> it.plan = [attempt(0, true)] }
    common(p, b, 'SUCCESS', 1, null)
    if (b.calls && b.calls[0].argv != defaultArgv) {
        p << "serfdeploy ran with ${b.calls[0].argv}, want ${defaultArgv}".toString()
    }
    // The defaults used must be the parameters block's.
    Map want = [MODULE: '--module', REF: '--ref', TARGET_TAG: '--tag', ENVIRONMENT: '--environment', MAX_TARGETS: '--max-targets']
    want.each { name, flag ->
        if (b.lastArg(flag) != b.paramDefaults[name]) {
            p << "${flag} ${b.lastArg(flag)} on the first build, but parameter ${name} defaults to '${b.paramDefaults[name]}'".toString()
        }
    }
    ['BATCH', 'CANARY', 'SERF_RPC_CREDENTIAL'].each { name ->
        if (b.paramDefaults[name] != '') {
            p << "parameter ${name} should default to empty, not '${b.paramDefaults[name]}'".toString()
        }
    }
}

test('Jenkinsfile: parameters reach serfdeploy, blast-radius flags included') { List p ->
    Map params = [MODULE: 'profile_db', REF: 'v1.2.0', TARGET_TAG: 'fqdn=web-0[12]', ENVIRONMENT: 'staging',
                  MAX_TARGETS: '5', BATCH: '10%', CANARY: '1', SERF_RPC_CREDENTIAL: '']
    Build b = runPipeline { Build it -> it.plan = [attempt(0, true)]; it.params = params; it.env.putAll(params) }
    common(p, b, 'SUCCESS', 1, null)
    [['--module', 'profile_db'], ['--ref', 'v1.2.0'], ['--tag', 'fqdn=web-0[12]'], ['--environment', 'staging'],
     ['--max-targets', '5'], ['--batch', '10%'], ['--canary', '1']].each { f ->
        if (!pair(b.calls[0].argv, f[0], f[1])) {
            p << "no ${f[0]} ${f[1]} in ${b.calls[0].argv}".toString()
        }
    }
}

test('Jenkinsfile: MAX_TARGETS 0 is no limit, only when given; empty is 50') { List p ->
    Build zero = runPipeline { Build it -> it.plan = [attempt(0, true)]; it.params = [MAX_TARGETS: '0'] }
    common(p, zero, 'SUCCESS', 1, null)
    if (!pair(zero.calls[0].argv, '--max-targets', '0')) {
        p << "MAX_TARGETS 0: ${zero.calls[0].argv}".toString()
    }
    Build empty = runPipeline { Build it -> it.plan = [attempt(0, true)]; it.params = [MAX_TARGETS: ' '] }
    if (!empty.calls || !pair(empty.calls[0].argv, '--max-targets', '50')) {
        p << "MAX_TARGETS empty: ${empty.calls*.argv}".toString()
    }
}

test('Jenkinsfile: a MAX_TARGETS, BATCH or CANARY that is not a number fails before serfdeploy runs') { List p ->
    [[MAX_TARGETS: 'all'], [BATCH: 'half'], [CANARY: '1%']].each { params ->
        Build b = runPipeline { Build it -> it.params = params }
        common(p, b, 'FAILURE', 0, null)
        if (!b.errors.any { it.contains(params.keySet()[0]) }) {
            p << "${params}: the error does not name the parameter: ${b.errors}".toString()
        }
    }
}

test('Jenkinsfile: quotes and $ in parameters are data, not shell') { List p ->
    String evil = 'x"; touch pwned; echo "$(touch pwned2)'
    Build b = runPipeline { Build it -> it.plan = [attempt(0, true)]; it.params = [MODULE: evil, TARGET_TAG: "role=${evil}".toString()] }
    common(p, b, 'SUCCESS', 1, null)
    if (!pair(b.calls[0].argv, '--module', evil) || !pair(b.calls[0].argv, '--tag', "role=${evil}".toString())) {
        p << "the values were changed on the way: ${b.calls[0].argv}".toString()
    }
    if (new File(b.work, 'pwned').exists() || new File(b.work, 'pwned2').exists()) {
        p << 'a parameter ran as a shell command'
    }
}

test('Jenkinsfile: no RPC credential: nothing bound to SERF_RPC_AUTH; the logging service set') { List p ->
    Build b = runPipeline { Build it -> it.plan = [attempt(0, true)] }
    common(p, b, 'SUCCESS', 1, null)
    if (b.bound.any { 'SERF_RPC_AUTH' in it.vars || it.id == 'serf-rpc-auth' }) {
        p << "an RPC key is bound: ${b.bound}".toString()
    }
    Map env = b.calls ? b.calls[0].env : [:]
    if (env.containsKey('SERF_RPC_AUTH')) {
        p << 'SERF_RPC_AUTH is set for serfdeploy: an agent without rpc_auth refuses any key (exit 5)'
    }
    if (!env.SERFDEPLOY_LOG_USER || !env.SERFDEPLOY_LOG_PASSWORD || !env.SERFDEPLOY_LOG_URL) {
        p << "the logging service's URL or credentials are not set for serfdeploy: ${env.keySet()}".toString()
    }
}

test('Jenkinsfile: SERF_RPC_CREDENTIAL given: that credential is SERF_RPC_AUTH') { List p ->
    Build b = runPipeline { Build it -> it.plan = [attempt(0, true)]; it.params = [SERF_RPC_CREDENTIAL: 'serf-rpc-auth'] }
    common(p, b, 'SUCCESS', 1, null)
    if (!b.bound.any { it.id == 'serf-rpc-auth' && it.vars == ['SERF_RPC_AUTH'] }) {
        p << "serf-rpc-auth is not bound to SERF_RPC_AUTH: ${b.bound}".toString()
    }
    if (b.calls && b.calls[0].env.SERF_RPC_AUTH != 'secret-of-serf-rpc-auth') {
        p << 'serfdeploy did not get SERF_RPC_AUTH'
    }
}

test('Jenkinsfile: options: a 70-minute timeout') { List p ->
    Build b = runPipeline { Build it -> it.plan = [attempt(0, true)] }
    if (b.timeoutMinutes != 70) {
        p << "options timeout ${b.timeoutMinutes}, want 70 (see the time budget)".toString()
    }
}

// ---- the shared step -------------------------------------------------------

Map base = [module: 'profile_web', ref: 'main']

test("serfDeploy step: nodes: 'web-01' is one node") { List p ->
    Build b = runStep(base + [nodes: 'web-01']) { Build it -> it.plan = [attempt(0, true)] }
    common(p, b, 'SUCCESS', 1, null)
    List argv = b.calls ? b.calls[0].argv : []
    if (argv.count('--node') != 1 || !pair(argv, '--node', 'web-01')) {
        p << "want one --node web-01: ${argv}".toString()
    }
}

test('serfDeploy step: nodes as a list, tags as a map') { List p ->
    Build b = runStep(base + [nodes: ['web-01', 'web-02'], tags: [segment: 'qa', fqdn: 'web-0[12]']]) { Build it -> it.plan = [attempt(0, true)] }
    common(p, b, 'SUCCESS', 1, null)
    List argv = b.calls ? b.calls[0].argv : []
    if (argv.count('--node') != 2 || !pair(argv, '--node', 'web-01') || !pair(argv, '--node', 'web-02') ||
            !pair(argv, '--tag', 'segment=qa') || !pair(argv, '--tag', 'fqdn=web-0[12]')) {
        p << "nodes or tags lost: ${argv}".toString()
    }
}

test('serfDeploy step: defaults: --max-targets 50, no batch, canary, noop, dry run or Puppet tags') { List p ->
    Build b = runStep(base) { Build it -> it.plan = [attempt(0, true)] }
    common(p, b, 'SUCCESS', 1, null)
    List argv = b.calls ? b.calls[0].argv : []
    if (!pair(argv, '--max-targets', '50')) {
        p << "no --max-targets 50: ${argv}".toString()
    }
    ['--batch', '--canary', '--noop', '--dry-run', '--puppet-tags', '--log-url', '--node', '--id'].each { f ->
        if (f in argv) {
            p << "${f} without being asked: ${argv}".toString()
        }
    }
}

test('serfDeploy step: maxTargets, batch, canary, noop, dryRun, puppetTags, logUrl, id pass through') { List p ->
    Build b = runStep(base + [maxTargets: 0, batch: '25%', canary: 2, noop: true, dryRun: true, puppetTags: ['a', 'b'],
                              logUrl: 'http://loki:3100', id: 'rel-1', environment: 'staging']) { Build it ->
        it.plan = [attempt(0, true)]
    }
    common(p, b, 'SUCCESS', 1, null)
    List argv = b.calls ? b.calls[0].argv : []
    [['--max-targets', '0'], ['--batch', '25%'], ['--canary', '2'], ['--puppet-tags', 'a,b'],
     ['--id', 'rel-1'], ['--environment', 'staging']].each { f ->
        if (!pair(argv, f[0], f[1])) {
            p << "no ${f[0]} ${f[1]}: ${argv}".toString()
        }
    }
    // logUrl reaches serfdeploy through the environment: a password in it
    // must not be on the command line (console echo, ps).
    if ('--log-url' in argv || (b.calls ? b.calls[0].env.SERFDEPLOY_LOG_URL : null) != 'http://loki:3100') {
        p << "logUrl not passed as SERFDEPLOY_LOG_URL only: ${argv}".toString()
    }
    ['--noop', '--dry-run'].each { f ->
        if (!(f in argv)) {
            p << "no ${f}: ${argv}".toString()
        }
    }
    Build s = runStep(base + [puppetTags: 'a,b', batch: 5]) { Build it -> it.plan = [attempt(0, true)] }
    if (!s.calls || !pair(s.calls[0].argv, '--puppet-tags', 'a,b') || !pair(s.calls[0].argv, '--batch', '5')) {
        p << "puppetTags as a string or batch as a number lost: ${s.calls*.argv}".toString()
    }
}

test('serfDeploy step: noop and exit 6 (pending changes): unstable, returns 6') { List p ->
    Build b = runStep(base + [noop: true]) { Build it -> it.plan = [attempt(6, true)] }
    common(p, b, 'UNSTABLE', 1, describeLast(b))
    if (b.returned != 6) {
        p << "returned ${b.returned}, want 6".toString()
    }
}

test('serfDeploy step: outDir: the HTML report is written there and published from there') { List p ->
    Build b = runStep(base + [outDir: 'reports/deploy']) { Build it -> it.plan = [attempt(1, true)] }
    b.unexpected.each { p << "unexpected exception: ${it}".toString() }
    if (b.lastArg('--html-report') != 'reports/deploy/serfdeploy-timeline.html') {
        p << "--html-report ${b.lastArg('--html-report')}, want reports/deploy/serfdeploy-timeline.html".toString()
    }
    if (b.htmls.size() != 1 || b.htmls[0].reportDir != 'reports/deploy' || b.htmls[0].reportFiles != 'serfdeploy-timeline.html') {
        p << "publishHTML ${b.htmls}, want reports/deploy/serfdeploy-timeline.html once".toString()
    }
}

test('Jenkinsfile: a parameter refused before serfdeploy runs: the HTML report is still published, allowed missing') { List p ->
    Build b = runPipeline { Build it -> it.params = [BATCH: 'half'] }
    common(p, b, 'FAILURE', 0, null)
}

test('serfDeploy step: retries 0: exit 5 before firing is not retried') { List p ->
    Build b = runStep(base + [retries: 0]) { Build it -> it.plan = [attempt(5, false), attempt(0, true)] }
    common(p, b, 'FAILURE', 1, describeLast(b))
}

test('serfDeploy step: retries 2: three attempts at most') { List p ->
    Build b = runStep(base + [retries: 2]) { Build it -> it.plan = [attempt(5, false), attempt(5, false), attempt(5, false), attempt(0, true)] }
    common(p, b, 'FAILURE', 3, describeLast(b))
    if (b.sleeps.size() != 2) {
        p << "paused ${b.sleeps.size()} times, want 2".toString()
    }
}

test('serfDeploy step: bad arguments fail before serfdeploy runs') { List p ->
    [[ref: 'main'], [module: 'm'], base + [maxTargets: 'all'], base + [batch: 'half'], base + [canary: -1],
     base + [retries: -1], base + [outDir: '../x'], base + [outDir: '.'], base + [tags: 'segment=qa']].each { a ->
        Build b = runStep(a) { }
        b.unexpected.each { p << "${a}: unexpected exception: ${it}".toString() }
        if (b.result != 'FAILURE' || b.calls || !b.errors) {
            p << "${a}: ${b.result} after ${b.calls.size()} runs, errors ${b.errors}; want error() before any run".toString()
        }
    }
}

test('serfDeploy step: binds no RPC key of its own') { List p ->
    Build b = runStep(base) { Build it -> it.plan = [attempt(0, true)] }
    common(p, b, 'SUCCESS', 1, null)
    if (b.bound || (b.calls && b.calls[0].env.containsKey('SERF_RPC_AUTH'))) {
        p << "the step bound credentials: ${b.bound}".toString()
    }
}

test('serfDeploy step: says when no logging service is set, and not when SERFDEPLOY_LOG_URL is') { List p ->
    Build none = runStep(base) { Build it -> it.plan = [attempt(0, true)] }
    if (!none.echoes.any { it.contains('SERFDEPLOY_LOG_URL') }) {
        p << "no word about the missing logging service: ${none.echoes}".toString()
    }
    Build set = runStep(base) { Build it -> it.plan = [attempt(0, true)]; it.env.SERFDEPLOY_LOG_URL = 'http://loki:3100' }
    if (set.echoes.any { it.contains('SERFDEPLOY_LOG_URL') }) {
        p << "warned although SERFDEPLOY_LOG_URL is set: ${set.echoes}".toString()
    }
}

tmp.deleteDir()
println "harness: ${passed} of ${passed + failed} cases passed (${jenkinsDir.path})"
System.exit(failed == 0 ? 0 : 1)
