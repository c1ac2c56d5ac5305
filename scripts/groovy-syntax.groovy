// Parses Groovy files (a Jenkinsfile, shared-library steps) without running
// them: a syntax error fails with its line; pipeline steps need not exist.
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases

int bad = 0
args.each { path ->
    try {
        def unit = new CompilationUnit(new CompilerConfiguration())
        unit.addSource(new File(path))
        unit.compile(Phases.CONVERSION)
        println "groovy syntax ok: ${path}"
    } catch (Exception e) {
        System.err.println "groovy syntax error in ${path}: ${e.message}"
        bad++
    }
}
System.exit(bad == 0 ? 0 : 1)
