package protocol

import (
	"os"
	"strings"
	"testing"
)

// The filter's text is what operators put in their unit files: it changes
// only with the event and query names.
func TestHandlerFilter(t *testing.T) {
	want := "user:deploy,query:puppetrun,query:puppet-status,query:puppet-disable,query:puppet-enable"
	if got := HandlerFilter(); got != want {
		t.Fatalf("HandlerFilter() = %q, want %q", got, want)
	}
}

// The shell scripts cannot call HandlerFilter: they hold its text, which
// must be the same.
func TestScriptsRegisterTheFilter(t *testing.T) {
	for _, path := range []string{"../scripts/demo.sh"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `-event-handler "`+HandlerFilter()+"=") {
			t.Errorf("%s does not register the handler with -event-handler \"%s=...\"", path, HandlerFilter())
		}
	}
}
