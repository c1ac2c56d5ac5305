package serfcluster

import (
	"crypto/rand"
	"encoding/base64"
	"testing"
)

// NewKey is a fresh gossip key, as `serf keygen` makes one: 32 random
// bytes in base64.
func NewKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}
