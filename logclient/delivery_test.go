package logclient

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/serfdeploy/serfdeploy/protocol"
)

// answering is a logging service that answers every request with code and
// body.
func answering(t *testing.T, code int, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestSpoolKeepsRecordsUnlessLokiTookThem: a record leaves the spool only
// when Loki said it stored it, with its 204 No Content. A 2xx that is not
// Loki's (a proxy's or captive portal's page, a stub) and a failure leave
// every record queued, none set aside, for the next flush.
func TestSpoolKeepsRecordsUnlessLokiTookThem(t *testing.T) {
	cases := []struct {
		name      string
		code      int
		body      string
		delivered bool
	}{
		{"204", http.StatusNoContent, "", true},
		{"200 garbage", http.StatusOK, "<html><body>Welcome to the hotel wifi</body></html>", false},
		{"200 empty", http.StatusOK, "", false},
		{"202 empty", http.StatusAccepted, "", false},
		{"200 with Loki's error words", http.StatusOK, "entry with timestamp ignored, reason: 'entry too far behind'", false},
		{"200 with a JSON error", http.StatusOK, `{"status":"error","error":"ingester unavailable"}`, false},
		{"500", http.StatusInternalServerError, "rpc error: code = Unavailable", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := answering(t, tc.code, tc.body)
			c := testClient(t, srv.URL, Config{Retries: -1})
			s := Spool{Dir: t.TempDir()}
			addRecords(t, s, 3, func(i int) protocol.RunRecord {
				return protocol.RunRecord{Event: "finished", DeployID: "d", Node: fmt.Sprint("n", i)}
			})
			before := snapshot(t, s.Dir)

			n, err := s.Flush(context.Background(), c)
			pending, _ := s.Pending()
			rejected, _ := s.Rejected()
			if tc.delivered {
				if err != nil || n != 3 || pending != 0 {
					t.Fatalf("sent %d, %d pending, %v; want all 3 sent", n, pending, err)
				}
				return
			}
			if n != 0 || pending != 3 || rejected != 0 || fmt.Sprint(snapshot(t, s.Dir)) != fmt.Sprint(before) {
				t.Fatalf("sent %d, %d pending, %d set aside; want all 3 kept as they were", n, pending, rejected)
			}
			if !errors.Is(err, ErrBadResponse) || refused(err) {
				t.Fatalf("flush error %v; want ErrBadResponse, not a refusal", err)
			}
			if tc.code/100 == 2 && !strings.Contains(err.Error(), fmt.Sprintf("answered HTTP %d", tc.code)) {
				t.Fatalf("the error does not say what came back: %v", err)
			}
		})
	}
}

// TestRecordsRefusesWhatIsNotLokisJSON: a 2xx to query_range whose body is
// not Loki's answer is ErrBadResponse, never "no records".
func TestRecordsRefusesWhatIsNotLokisJSON(t *testing.T) {
	for _, body := range []string{
		"<html>login</html>",
		"",
		`{"status":"error","error":"too many outstanding requests"}`,
		`[1,2,3]`,
	} {
		srv := answering(t, http.StatusOK, body)
		c := testClient(t, srv.URL, Config{Retries: -1})
		recs, err := c.Records(context.Background(), "d", time.Now().Add(-time.Hour), time.Now())
		if !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), "not Loki's JSON") || recs != nil {
			t.Errorf("body %q: %d records, %v", body, len(recs), err)
		}
	}
}

// TestErrorsCarryNoSecret: whatever fails, the client's errors name the
// service without the password of its URL, and mask credentials the
// service echoes back.
func TestErrorsCarryNoSecret(t *testing.T) {
	const urlPassword, password, token = "url-s3cret", "cfg-s3cret", "tok-s3cret"
	ctx := context.Background()
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		for _, secret := range []string{urlPassword, password, token,
			base64.StdEncoding.EncodeToString([]byte("ci:" + password)), base64.StdEncoding.EncodeToString([]byte("ci:" + urlPassword))} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the error shows %q: %v", what, secret, err)
			}
		}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	c := testClient(t, "http://ci:"+urlPassword+"@"+dead, Config{Retries: -1})
	if c.URL() != "http://ci:xxxxx@"+dead {
		t.Errorf("URL() = %q", c.URL())
	}
	check("ready, unreachable", c.Ready(ctx))
	check("push, unreachable", c.Push(ctx, protocol.RunRecord{Node: "n"}))
	_, err = c.Records(ctx, "d", time.Now().Add(-time.Hour), time.Now())
	check("records, unreachable", err)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	check("push, cancelled", c.Push(cancelled, protocol.RunRecord{Node: "n"}))

	// A service (or a proxy) that echoes the request back, headers and
	// all, in an error and in a 2xx that is not Loki's.
	for _, code := range []int{http.StatusUnauthorized, http.StatusBadRequest, http.StatusInternalServerError, http.StatusOK} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			user, pass, _ := r.BasicAuth()
			bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			fmt.Fprintf(w, "you sent %s:%s and %s to %s %v", user, pass, bearer, r.URL.RequestURI(), r.Header)
		}))
		// Credentials from the config, or from the URL's userinfo.
		for _, cfg := range []Config{{Username: "ci", Password: password}, {BearerToken: token}, {}} {
			c := testClient(t, strings.Replace(srv.URL, "://", "://ci:"+urlPassword+"@", 1), cfg)
			c.cfg.Retries = 0
			check(fmt.Sprint("push, HTTP ", code), c.Push(ctx, protocol.RunRecord{Node: "n"}))
			_, err := c.Records(ctx, "d", time.Now().Add(-time.Hour), time.Now())
			check(fmt.Sprint("records, HTTP ", code), err)
		}
		srv.Close()
	}

	_, err = New(Config{URL: "http://ci:" + urlPassword + "@"})
	check("a URL with no host", err)
}
