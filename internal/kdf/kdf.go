// Package kdf is the one place that says how long a server secret must be
// and how a key for one purpose is derived from it. Every package that takes
// the HMAC secret or a signing seed checks it here and derives from it here,
// each under its own label, so no two uses of one secret can be confused.
package kdf

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
)

// MinLen is the shortest secret accepted: 32 bytes, the size of the
// HMAC-SHA-256 keys derived from it, so no derived key is stronger than
// the secret it comes from claims to be.
const MinLen = 32

// Check returns an error naming what when secret is shorter than MinLen.
func Check(what string, secret []byte) error {
	if len(secret) < MinLen {
		return fmt.Errorf("%s must be at least %d bytes", what, MinLen)
	}
	return nil
}

// Derive returns HMAC-SHA-256(master, label): a subkey for one purpose.
func Derive(master []byte, label string) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte(label))
	return m.Sum(nil)
}
