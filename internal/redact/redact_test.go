package redact

import "testing"

func TestURL(t *testing.T) {
	cases := map[string]string{
		"http://user:s3cret@loki:3100":       "http://user:xxxxx@loki:3100",
		"http://user:s3cret@loki:3100/a?b=c": "http://user:xxxxx@loki:3100/a?b=c",
		"https://user@loki":                  "https://user@loki",
		"http://loki:3100":                   "http://loki:3100",
		// Does not parse (a space in the host): redacted as text.
		"http://user:s3cret@lo ki:3100": "http://user:xxxxx@lo ki:3100",
		"http://user:s3c@ret@loki:3100": "http://user:xxxxx@loki:3100",
	}
	for in, want := range cases {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestText(t *testing.T) {
	cases := []struct {
		in      string
		secrets []string
		want    string
	}{
		{`Get "http://ci:s3cret@127.0.0.1:9/ready": dial tcp: connection refused`, nil,
			`Get "http://ci:xxxxx@127.0.0.1:9/ready": dial tcp: connection refused`},
		{`two: http://a:s3cret@x and https://b:s3cret@y/z`, nil, `two: http://a:xxxxx@x and https://b:xxxxx@y/z`},
		{`"http://a:s3cret@x"`, nil, `"http://a:xxxxx@x"`},
		{`mail me at ops@example.com, see http://loki:3100`, nil, `mail me at ops@example.com, see http://loki:3100`},
		{"echo: Authorization: Basic Y2k6czNjcmV0", nil, "echo: Authorization: Basic xxxxx"},
		{`{"Authorization":["Bearer abc.def-ghi"]}`, nil, `{"Authorization":["Bearer xxxxx"]}`},
		{"map[Authorization:[Basic Y2k6czNjcmV0]]", nil, "map[Authorization:[Basic xxxxx]]"},
		{"basic authentication required", nil, "basic authentication required"},
		{"token tok-s3cret in the body, escaped a%2Fb", []string{"tok-s3cret", "a/b", ""}, "token xxxxx in the body, escaped xxxxx"},
	}
	for _, c := range cases {
		if got := Text(c.in, c.secrets...); got != c.want {
			t.Errorf("Text(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
