package loki

import (
	"net/http"
	"testing"
)

// TestStartStopRestart: Loki answers once started, not once stopped, and
// again once restarted at the same URL.
func TestStartStopRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("two Loki starts, 15 s each: not in -short")
	}
	l := Start(t)
	ready := func() bool {
		resp, err := http.Get(l.URL + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if !ready() {
		t.Fatal("not ready after Start")
	}
	l.Stop()
	l.Stop() // twice is fine
	if ready() {
		t.Fatal("still answers after Stop")
	}
	l.Restart(t)
	if !ready() {
		t.Fatal("not ready after Restart")
	}
}
