package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/serfdeploy/serfdeploy/orchestrate"
)

// Markdown writes the result for a Jenkins build description or a pull
// request comment.
func Markdown(w io.Writer, res *orchestrate.Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "### serfdeploy %s `%s`\n\n", res.Kind, res.ID)
	if res.Module != "" {
		fmt.Fprintf(&b, "Module `%s` at `%s`", res.Module, res.Ref)
		if res.Environment != "" {
			fmt.Fprintf(&b, " in environment `%s`", res.Environment)
		}
		b.WriteString(".\n\n")
	}
	if res.Build != nil && res.Build.URL != "" {
		fmt.Fprintf(&b, "Build: [%s](%s)\n\n", mdEscape(res.Build.Tag), res.Build.URL)
	}
	fmt.Fprintf(&b, "**%s**\n\n", mdEscape(res.Outcome))
	b.WriteString("| Node | Result | Exit | Changed | Failed | Total | Duration | Detail |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---|\n")
	for _, n := range res.Nodes {
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %s | %s |\n", mdEscape(n.Node), n.State, exitText(n.ExitCode),
			n.Changed, n.Failed, n.Total, durationText(n.DurationSec), mdEscape(detail(n)))
	}
	var failed []string
	for _, n := range res.Nodes {
		for _, f := range n.FailedResources {
			failed = append(failed, fmt.Sprintf("- `%s` %s: %s", n.Node, mdEscape(f.Resource), mdEscape(oneLine(f.Message, 300))))
		}
	}
	if len(failed) > 0 {
		b.WriteString("\nFailed resources:\n\n" + strings.Join(failed, "\n") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdEscape keeps node output from breaking the table or injecting markup.
func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;", "`", "'")
	return r.Replace(s)
}
