package verification

import (
	"strings"
	"sync"
	"testing"
)

// TestKeysKnownAnswers pins the keyed hashes to fixed values: code hashes and
// handles are stored in DynamoDB and ids are in clients' hands, so a change of
// derivation (or a pooled MAC carrying state from one message into the next)
// would strand every code in flight across a deploy.
func TestKeysKnownAnswers(t *testing.T) {
	k, err := NewKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	const nonce = "AAECAwQFBgcICQoLDA0ODw"
	const phoneHandle = "KiSye9XA5NnQQwFfQ2UY9Q"
	// Twice each, so a second use of a pooled MAC is checked too.
	for range 2 {
		if got := k.Handle("+8613800138000"); got != phoneHandle {
			t.Errorf("Handle(phone) = %q, want %q", got, phoneHandle)
		}
		if got, want := k.Handle("user@example.com"), "gffWVYPhztGKYRmPnMu8yQ"; got != want {
			t.Errorf("Handle(email) = %q, want %q", got, want)
		}
		if got, want := k.CodeHash(nonce, "123456"), "PwAsSDTFFlQRwikQZdz1lV9gYJAgOVAu7Jte_b5ioQU"; got != want {
			t.Errorf("CodeHash = %q, want %q", got, want)
		}
		for _, tc := range []struct {
			isUser bool
			id     string
		}{
			{true, "AAECAwQFBgcICQoLDA0OD6zreFv0uL19prjWx94PLD9KgfUDqu5kTKvNcYtMqEEA"},
			{false, "AAECAwQFBgcICQoLDA0OD6zreFv0uL19prjWx94PLD8FjhSm_CLz_jLtOBAV17GM"},
		} {
			id, err := k.VerificationID(nonce, phoneHandle, tc.isUser)
			if err != nil || id != tc.id {
				t.Errorf("VerificationID(isUser=%v) = %q, %v; want %q", tc.isUser, id, err, tc.id)
			}
			n, h, isUser, err := k.ParseVerificationID(tc.id)
			if err != nil || n != nonce || h != phoneHandle || isUser != tc.isUser {
				t.Errorf("ParseVerificationID(%q) = %q, %q, %v, %v", tc.id, n, h, isUser, err)
			}
		}
	}
}

func TestParseVerificationIDRefusesForeignIDs(t *testing.T) {
	k, _ := NewKeys([]byte("0123456789abcdef0123456789abcdef"))
	other, _ := NewKeys([]byte("fedcba9876543210fedcba9876543210"))
	id, _ := other.VerificationID("AAECAwQFBgcICQoLDA0ODw", "KiSye9XA5NnQQwFfQ2UY9Q", true)
	good, _ := k.VerificationID("AAECAwQFBgcICQoLDA0ODw", "KiSye9XA5NnQQwFfQ2UY9Q", true)
	flipped := []byte(good)
	flipped[40] ^= 1
	for _, bad := range []string{id, string(flipped), "", good[:63], good + "A", strings.Repeat("!", 64)} {
		if _, _, _, err := k.ParseVerificationID(bad); err != ErrExpired {
			t.Errorf("ParseVerificationID(%q): %v, want ErrExpired", bad, err)
		}
	}
	if _, err := k.VerificationID("short", "KiSye9XA5NnQQwFfQ2UY9Q", true); err == nil {
		t.Error("VerificationID accepted a bad nonce")
	}
}

// TestKeysConcurrent runs the pooled MACs from many goroutines (meant for
// -race): every answer must still be the known one.
func TestKeysConcurrent(t *testing.T) {
	k, _ := NewKeys([]byte("0123456789abcdef0123456789abcdef"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if got := k.Handle("+8613800138000"); got != "KiSye9XA5NnQQwFfQ2UY9Q" {
					t.Errorf("Handle = %q", got)
					return
				}
				if got := k.CodeHash("AAECAwQFBgcICQoLDA0ODw", "123456"); got != "PwAsSDTFFlQRwikQZdz1lV9gYJAgOVAu7Jte_b5ioQU" {
					t.Errorf("CodeHash = %q", got)
					return
				}
			}
		}()
	}
	wg.Wait()
}
