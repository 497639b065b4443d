package kdf

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		name string
		n    int
		ok   bool
	}{
		{"empty", 0, false},
		{"one short", MinLen - 1, false},
		{"exact", MinLen, true},
		{"longer", 64, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Check("HMAC key", make([]byte, tt.n))
			if (err == nil) != tt.ok {
				t.Fatalf("Check(%d bytes) = %v, want ok %v", tt.n, err, tt.ok)
			}
			if err != nil && err.Error() != "HMAC key must be at least 32 bytes" {
				t.Errorf("got %q, want the name and the minimum", err)
			}
		})
	}
}

// TestDerive pins the derivation: every stored hash, id and signing key of a
// deployment depends on it, so a change would invalidate them all.
func TestDerive(t *testing.T) {
	master := []byte("0123456789abcdef0123456789abcdef")
	m := hmac.New(sha256.New, master)
	m.Write([]byte("label v1"))
	if got, want := Derive(master, "label v1"), m.Sum(nil); !bytes.Equal(got, want) {
		t.Errorf("Derive = %x, want HMAC-SHA-256(master, label) %x", got, want)
	}
	if bytes.Equal(Derive(master, "a"), Derive(master, "b")) {
		t.Error("two labels derive the same key")
	}
}
