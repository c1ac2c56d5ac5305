package render

import (
	"fmt"
	"io"
	"strings"

	"github.com/serfdeploy/serfdeploy/orchestrate"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// Markdown writes the result for a Jenkins build description or a pull
// request comment. Node text is cleaned and kept to one line per cell or
// item, so that it can neither break the table nor inject markup.
func Markdown(w io.Writer, res *orchestrate.Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "### serfdeploy %s %s\n\n", mdEscape(line(res.Kind, 100)), mdCode(res.ID))
	if res.Module != "" {
		fmt.Fprintf(&b, "Module %s at %s", mdCode(res.Module), mdCode(res.Ref))
		if res.Environment != "" {
			fmt.Fprintf(&b, " in environment %s", mdCode(res.Environment))
		}
		b.WriteString(".\n\n")
	}
	if res.Build != nil && res.Build.URL != "" {
		fmt.Fprintf(&b, "Build: [%s](%s)\n\n", mdEscape(line(res.Build.Tag, 200)), mdURL(res.Build.URL))
	}
	for _, m := range res.Masters {
		fmt.Fprintf(&b, "- master %s: %s\n", mdCode(m.Node), mdEscape(masterLine(m, maxText)))
	}
	if len(res.Masters) > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "**%s**\n\n", mdEscape(outcomeText(res)))
	if len(res.Nodes) > 0 {
		b.WriteString("| Node | Result | Exit | Changed | Failed | Total | Duration | Detail |\n")
		b.WriteString("|---|---|---|---:|---:|---:|---:|---|\n")
		for _, n := range res.Nodes {
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %d | %s | %s |\n", mdEscape(line(n.Node, 300)), mdEscape(line(n.State, 100)),
				protocol.ExitText(n.ExitCode), n.Changed, n.Failed, n.Total, durationText(n.DurationSec), mdEscape(detail(n)))
		}
	}
	var failed []string
	for _, n := range res.Nodes {
		for _, f := range n.FailedResources {
			failed = append(failed, fmt.Sprintf("- %s %s: %s", mdCode(n.Node), mdEscape(line(f.Resource, 1000)), mdEscape(line(f.Message, maxText))))
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
	r := strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;", "`", "'")
	return r.Replace(s)
}

// mdCode is s as inline code, on one line, without a backtick to end it.
func mdCode(s string) string {
	return "`" + strings.ReplaceAll(line(s, 300), "`", "'") + "`"
}

// mdURL keeps a link target from ending early.
func mdURL(s string) string {
	r := strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29", "<", "%3C", ">", "%3E")
	return r.Replace(line(s, 2000))
}
