// Package redact is the one place that takes secrets out of text meant for
// people: a password in a URL's userinfo (http://user:pass@loki:3100), the
// credentials of an Authorization header, and any secret the caller names.
// Every message, log line and report that may hold the logging service's
// URL or an error about it goes through here first.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask is what stands in for a secret: the same text net/url's
// URL.Redacted writes, so that a URL reads the same wherever it was
// redacted.
const Mask = "xxxxx"

// URL returns raw with the password of its userinfo masked. A string that
// does not parse as a URL is redacted as free text instead, so that a
// malformed URL (the one in a "bad URL" message) never leaks either.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return Text(raw)
	}
	return u.Redacted()
}

var (
	// userinfo finds scheme://userinfo@ in free text. The userinfo runs to
	// the last @ before the host's end (/ ? # or a space), as net/url
	// reads it, so that a password holding a raw @ is masked whole.
	userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)([^\s/?#]*)@`)
	// authorization finds the credentials of an Authorization header
	// echoed in a body (e.g. a debugging proxy's), in the forms
	// "Authorization: Basic ...", "Authorization":["Bearer ..."] or Go's
	// Authorization:[Basic ...]. The header name must be there: "basic"
	// and "bearer" alone are ordinary words in messages.
	authorization = regexp.MustCompile(`(?i)(authorization\W{0,4}(?:basic|bearer)\s+)[A-Za-z0-9._~+/=\-]+`)
)

// Text returns s with every URL's password, every Authorization header's
// credentials and every one of secrets masked. Empty secrets are ignored.
func Text(s string, secrets ...string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, Mask)
			// A secret may also sit percent-encoded in a URL or a query.
			if esc := url.QueryEscape(secret); esc != secret {
				s = strings.ReplaceAll(s, esc, Mask)
			}
		}
	}
	s = userinfo.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfo.FindStringSubmatch(m)
		user, _, hasPassword := strings.Cut(sub[2], ":")
		if !hasPassword {
			return m // a user name alone is no secret, as for URL.Redacted
		}
		return sub[1] + user + ":" + Mask + "@"
	})
	return authorization.ReplaceAllString(s, "${1}"+Mask)
}
