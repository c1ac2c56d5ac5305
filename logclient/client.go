// Package logclient is the only code that speaks to the logging service,
// Grafana Loki: nodes push a record when a Puppet run starts and when it
// finishes, and the CLI reads each node's latest record of a deploy back.
package logclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/serfdeploy/serfdeploy/internal/redact"
	"github.com/serfdeploy/serfdeploy/protocol"
)

// Errors a caller can tell apart with errors.Is; the wrapped text says
// which URL and what happened. No error of this package carries a
// password or token: the URL in it is redacted (internal/redact), and so
// is anything the service or net/http said.
var (
	ErrUnreachable  = errors.New("logging service unreachable")
	ErrUnauthorized = errors.New("logging service refused the credentials")
	ErrBadResponse  = errors.New("logging service gave an unexpected answer")
)

// Config says where the logging service is and how to authenticate.
type Config struct {
	URL         string
	TenantID    string // sent as X-Scope-OrgID
	Username    string // basic auth
	Password    string
	BearerToken string
	CAFile      string        // CA for https
	Timeout     time.Duration // per request; default 10s
	Retries     int           // extra attempts on transient errors; default 3
	Job         string        // the job label; default serfdeploy
}

// Client talks to one Loki.
type Client struct {
	cfg  Config
	base *url.URL
	// where is base for messages, its password masked; secrets are the
	// credentials that must never appear in one.
	where   string
	secrets []string
	http    *http.Client
	// firstDelay is the backoff's first wait; tests make it tiny.
	firstDelay time.Duration
}

// New checks the config and builds a client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("logging service URL %q must look like http://host:3100", redact.URL(cfg.URL))
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Job == "" {
		cfg.Job = "serfdeploy"
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("logging service CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("logging service CA file %s holds no PEM certificate", cfg.CAFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	// The credentials as sent, too: a proxy may echo the Authorization
	// header's value back in its answer.
	secrets := []string{cfg.Password, cfg.BearerToken}
	if cfg.Password != "" {
		secrets = append(secrets, basicAuth(cfg.Username, cfg.Password))
	}
	if p, ok := u.User.Password(); ok && p != "" {
		secrets = append(secrets, p, basicAuth(u.User.Username(), p))
	}
	return &Client{
		cfg: cfg, base: u, where: u.Redacted(), secrets: secrets,
		http: &http.Client{Timeout: cfg.Timeout, Transport: transport}, firstDelay: 500 * time.Millisecond,
	}, nil
}

// URL is the service's base URL for messages, its password masked.
func (c *Client) URL() string { return c.where }

// basicAuth is the credential of a Basic Authorization header, as
// net/http's SetBasicAuth writes it.
func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// scrub masks the client's credentials, and any URL password or
// Authorization header, in text that came from elsewhere (an answer's
// body, a net/http error), before it goes into an error.
func (c *Client) scrub(s string) string { return redact.Text(s, c.secrets...) }

// statusError is an HTTP answer other than success.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string {
	line, _, _ := strings.Cut(strings.TrimSpace(e.body), "\n")
	return fmt.Sprintf("HTTP %d: %s", e.code, protocol.OneLine(line, 200))
}

// refused reports whether the service turned the pushed records down for
// good: 400 (Loki's "entry too far behind", "timestamp too new", "max entry
// size exceeded"), 413 or 422. The same records would be refused again.
// 401/403 (credentials), 404 (wrong URL), 429 and 5xx are not about the
// records, so they are not refusals.
func refused(err error) bool {
	var serr *statusError
	if !errors.As(err, &serr) {
		return false
	}
	switch serr.code {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// do sends one request with retries on transient failures and returns the
// status and body of a 2xx answer; what a 2xx must look like is the
// caller's to check.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte) (int, []byte, error) {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = query.Encode()
	var code int
	var out []byte
	attempt := func() error {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
		if err != nil {
			return backoff.Permanent(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		c.authorize(req)
		resp, err := c.http.Do(req)
		if err != nil {
			// A certificate that does not verify will not verify on the
			// next try either.
			var certErr *tls.CertificateVerificationError
			if ctx.Err() != nil || errors.As(err, &certErr) {
				return backoff.Permanent(err)
			}
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if resp.StatusCode/100 == 2 {
			code, out = resp.StatusCode, b
			return nil
		}
		serr := &statusError{code: resp.StatusCode, body: c.scrub(string(b))}
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return serr
		}
		return backoff.Permanent(serr)
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = c.firstDelay
	b.MaxInterval = 10 * c.firstDelay
	b.MaxElapsedTime = 0
	err := backoff.Retry(attempt, backoff.WithContext(backoff.WithMaxRetries(b, uint64(c.cfg.Retries)), ctx))
	if err == nil {
		return code, out, nil
	}
	return 0, nil, c.explain(err)
}

func (c *Client) authorize(req *http.Request) {
	if c.cfg.TenantID != "" {
		req.Header.Set("X-Scope-OrgID", c.cfg.TenantID)
	}
	switch {
	case c.cfg.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+c.cfg.BearerToken)
	case c.cfg.Username != "":
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
}

// explain wraps a failure in the sentinel it stands for.
func (c *Client) explain(err error) error {
	var serr *statusError
	if errors.As(err, &serr) {
		switch {
		case serr.code == http.StatusUnauthorized || serr.code == http.StatusForbidden:
			return fmt.Errorf("%w at %s (%v): check --log-user/--log-password, --log-token or --log-tenant", ErrUnauthorized, c.where, serr)
		default:
			// serr stays in the chain so that the spool can tell a refusal
			// of the records (refused) from a service that is unwell.
			return fmt.Errorf("%w at %s: %w", ErrBadResponse, c.where, serr)
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w at %s: %s", ErrUnreachable, c.where, c.scrub(err.Error()))
	}
	return fmt.Errorf("%w at %s: %s; is Loki running there? set --log-url or SERFDEPLOY_LOG_URL", ErrUnreachable, c.where, c.scrub(rootCause(err).Error()))
}

// rootCause drops the URL the net/http error repeats.
func rootCause(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// Ready reports whether Loki answers /ready.
func (c *Client) Ready(ctx context.Context) error {
	_, _, err := c.do(ctx, http.MethodGet, "/ready", nil, nil)
	return err
}

func nsString(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only plain data is marshalled here.
		panic(err)
	}
	return b
}
