// Package loki runs a real Grafana Loki (single binary, filesystem
// storage, loopback) for tests. The binary is built once by
// scripts/build-loki.sh into a cache outside the repository.
package loki

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const version = "v3.7.8" // keep in step with scripts/build-loki.sh

// Binary returns the Loki binary: $SERFDEPLOY_LOKI, else the build cache.
// A missing binary fails the test: a skipped Loki test would pass CI
// without proving anything.
func Binary(t testing.TB) string {
	t.Helper()
	path, err := FindBinary()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// FindBinary is Binary for a program: an error when there is no binary.
func FindBinary() (string, error) {
	path := os.Getenv("SERFDEPLOY_LOKI")
	if path == "" {
		cache := os.Getenv("SERFDEPLOY_CACHE")
		if cache == "" {
			base, err := os.UserCacheDir()
			if err != nil {
				return "", err
			}
			cache = filepath.Join(base, "serfdeploy")
		}
		path = filepath.Join(cache, "loki-"+version, "loki")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("Loki binary not found at %s: run scripts/build-loki.sh (about 10 minutes once)", path)
	}
	return path, nil
}

// Loki is a running Loki.
type Loki struct {
	URL string
	Dir string

	bin        string
	http, grpc int
	mu         sync.Mutex
	cmd        *exec.Cmd
	exited     chan struct{}
}

// Start starts Loki and waits until it is ready; it stops with the test.
func Start(t testing.TB) *Loki {
	t.Helper()
	begin := time.Now()
	l, err := Launch(Binary(t), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Loki ready at %s after %s", l.URL, time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() {
		l.Stop()
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(l.Dir, "loki.log"))
			t.Logf("Loki log, last lines:\n%s", tail(string(out), 40))
		}
	})
	return l
}

// Launch is Start for a program: it starts the Loki binary bin with its
// config, data and log in dir, on free ports, and waits until it is ready.
// The caller stops it.
func Launch(bin, dir string) (*Loki, error) {
	l := &Loki{bin: bin, Dir: dir}
	var err error
	if l.http, err = freePort(); err != nil {
		return nil, err
	}
	if l.grpc, err = freePort(); err != nil {
		return nil, err
	}
	l.URL = fmt.Sprintf("http://127.0.0.1:%d", l.http)
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "loki.sh")
	if out, err := exec.Command("sh", script, "config", l.Dir, strconv.Itoa(l.http), strconv.Itoa(l.grpc)).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("loki config: %w: %s", err, out)
	}
	if err := l.start(); err != nil {
		return nil, err
	}
	return l, nil
}

// start starts the process and waits until it answers /ready; a Loki that
// does not is stopped.
func (l *Loki) start() error {
	logFile, err := os.OpenFile(filepath.Join(l.Dir, "loki.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(l.bin, "-config.file="+filepath.Join(l.Dir, "loki.yaml"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting Loki: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	l.mu.Lock()
	l.cmd, l.exited = cmd, exited
	l.mu.Unlock()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			out, _ := os.ReadFile(filepath.Join(l.Dir, "loki.log"))
			return fmt.Errorf("Loki exited at start:\n%s", tail(string(out), 30))
		default:
		}
		resp, err := http.Get(l.URL + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	l.Stop()
	return fmt.Errorf("Loki at %s not ready after 90s", l.URL)
}

// Stop stops Loki (SIGTERM, then SIGKILL after 10s). Safe to call twice.
func (l *Loki) Stop() {
	l.mu.Lock()
	cmd, exited := l.cmd, l.exited
	l.cmd = nil
	l.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
}

// Restart starts Loki again on the same ports and data.
func (l *Loki) Restart(t testing.TB) {
	t.Helper()
	l.Stop()
	begin := time.Now()
	if err := l.Relaunch(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Loki ready at %s after %s", l.URL, time.Since(begin).Round(time.Millisecond))
}

// Relaunch is Restart for a program.
func (l *Loki) Relaunch() error {
	l.Stop()
	return l.start()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
