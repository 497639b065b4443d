package captcha

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/verification"
)

func mustService(t testing.TB, master byte) *Service {
	t.Helper()
	s, err := NewService(newFakeStore(), testMaster(master), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testIP is the IP key that solves the captchas of the tests.
const testIP = "192.0.2.1"

func mustMint(t testing.TB, s *Service, now time.Time) string {
	t.Helper()
	tok, err := s.mint(now, testIP)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// reencode returns the token with its raw bytes changed by f.
func reencode(t *testing.T, tok string, f func(raw []byte)) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, passPrefix))
	if err != nil {
		t.Fatal(err)
	}
	f(raw)
	return passPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

func TestCheckValid(t *testing.T) {
	s := mustService(t, 1)
	tok := mustMint(t, s, t0)
	if len(tok) != passLen || !strings.HasPrefix(tok, "v2.") {
		t.Fatalf("token %q: want %d characters starting v2.", tok, passLen)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok[3:])
	wantID := base64.RawURLEncoding.EncodeToString(raw[:16])
	wantExp := t0.Add(300 * time.Second)

	for _, now := range []time.Time{t0, t0.Add(299 * time.Second), wantExp.Add(-time.Nanosecond)} {
		pass, err := s.Check(tok, testIP, now)
		if err != nil {
			t.Fatalf("at %v: %v", now, err)
		}
		if pass.ID != wantID || !pass.Expires.Equal(wantExp) {
			t.Errorf("at %v: got %+v, want ID %q expiring %v", now, pass, wantID, wantExp)
		}
	}
	if other := mustMint(t, s, t0); other == tok {
		t.Error("two tokens are equal")
	}
}

// A sub-second clock rounds the expiry up: the token never lives shorter
// than the expires_in the client was told.
func TestMintRoundsExpiryUp(t *testing.T) {
	s := mustService(t, 1)
	now := t0.Add(400 * time.Millisecond)
	pass, err := s.Check(mustMint(t, s, now), testIP, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(301 * time.Second); !pass.Expires.Equal(want) {
		t.Errorf("expiry: got %v, want %v", pass.Expires, want)
	}
}

func TestCheckInvalid(t *testing.T) {
	s := mustService(t, 1)
	tok := mustMint(t, s, t0)
	foreign := mustMint(t, mustService(t, 2), t0)
	garbage := make([]byte, passRawLen)
	if _, err := rand.Read(garbage); err != nil {
		t.Fatal(err)
	}
	last := strings.IndexByte(b64url, tok[len(tok)-1])

	// A token signed with the right format and an empty key, as a Service
	// literal without keys would accept.
	emptyKey := func() string {
		body := make([]byte, idLen+8)
		binary.BigEndian.PutUint64(body[idLen:], uint64(t0.Add(time.Hour).Unix()))
		m := hmac.New(sha256.New, nil)
		m.Write([]byte(passPrefix))
		m.Write(body)
		m.Write([]byte(testIP))
		return passPrefix + base64.RawURLEncoding.EncodeToString(append(body, m.Sum(nil)[:16]...))
	}()
	// A far-future expiry with the tag recomputed under a wrong key.
	extended := reencode(t, foreign, func(raw []byte) {
		binary.BigEndian.PutUint64(raw[16:24], uint64(t0.Add(1000*time.Hour).Unix()))
	})

	tests := []struct {
		name, token string
		now         time.Time
	}{
		{"at expiry", tok, t0.Add(300 * time.Second)},
		{"after expiry", tok, t0.Add(301 * time.Second)},
		{"long after expiry", tok, t0.Add(24 * time.Hour)},
		{"different key", foreign, t0},
		{"different key, extended", extended, t0},
		{"empty key", emptyKey, t0},
		{"empty", "", t0},
		{"prefix only", "v2.", t0},
		{"no prefix", tok[3:], t0},
		{"older version", "v1." + tok[3:], t0},
		{"upper-case prefix", "V2." + tok[3:], t0},
		{"other separator", "v2:" + tok[3:], t0},
		{"truncated", tok[:len(tok)-1], t0},
		{"extended", tok + "A", t0},
		{"padded", tok + "=", t0},
		{"non-canonical spelling", tok[:len(tok)-1] + string(b64url[last|1]), t0},
		{"standard alphabet", tok[:len(tok)-2] + "+/", t0},
		{"whitespace", " " + tok[:len(tok)-1], t0},
		{"garbage", passPrefix + base64.RawURLEncoding.EncodeToString(garbage), t0},
		{"image token", base64.RawURLEncoding.EncodeToString(garbage[:16]), t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pass, err := s.Check(tt.token, testIP, tt.now)
			if !errors.Is(err, verification.ErrCaptchaInvalid) {
				t.Errorf("got %+v, %v; want ErrCaptchaInvalid", pass, err)
			}
			if pass != (verification.CaptchaPass{}) {
				t.Errorf("got pass %+v with the refusal, want the zero pass", pass)
			}
		})
	}
}

// A token serves only the IP key that solved the captcha: from any other
// (a neighbour, a prefix or extension of the key, none) it is a forgery.
func TestCheckOtherIPKey(t *testing.T) {
	s := mustService(t, 1)
	tok := mustMint(t, s, t0)
	if _, err := s.Check(tok, testIP, t0); err != nil {
		t.Fatalf("solver's IP key: got %v, want the pass", err)
	}
	for _, ip := range []string{"192.0.2.2", "192.0.2.10", "192.0.2.", testIP + "0", "", "2001:db8::1"} {
		if _, err := s.Check(tok, ip, t0); !errors.Is(err, verification.ErrCaptchaInvalid) {
			t.Errorf("from %q: got %v, want ErrCaptchaInvalid", ip, err)
		}
	}
}

// Flipping any bit of the id, the expiry or the tag breaks the token.
func TestCheckTampered(t *testing.T) {
	s := mustService(t, 1)
	tok := mustMint(t, s, t0)
	regions := []struct {
		name       string
		start, end int
	}{{"id", 0, 16}, {"expiry", 16, 24}, {"tag", 24, 40}}
	for _, r := range regions {
		for i := r.start; i < r.end; i++ {
			for _, bit := range []byte{0x01, 0x80} {
				bad := reencode(t, tok, func(raw []byte) { raw[i] ^= bit })
				if _, err := s.Check(bad, testIP, t0); !errors.Is(err, verification.ErrCaptchaInvalid) {
					t.Errorf("%s byte %d bit %#x flipped: got %v, want ErrCaptchaInvalid", r.name, i, bit, err)
				}
			}
		}
	}
}

func TestCheckZeroService(t *testing.T) {
	tok := mustMint(t, mustService(t, 1), t0)
	if _, err := (&Service{}).Check(tok, testIP, t0); !errors.Is(err, verification.ErrCaptchaInvalid) {
		t.Errorf("a Service literal accepted a token: %v", err)
	}
}

// The answer key and the token key differ, so neither kind of value can be
// passed off as the other.
func TestKeysAreSeparate(t *testing.T) {
	s := mustService(t, 1)
	if hmac.Equal(s.answerKey, s.passKey) {
		t.Error("answer and token keys are equal")
	}
}

// FuzzCheck feeds Check arbitrary tokens: it must never panic, must refuse
// with ErrCaptchaInvalid or accept, and may accept only an unexpired token of
// the exact format. The seeds live in testdata/fuzz/FuzzCheck; the first is
// a valid token of the key and clock below.
//
//	go test -fuzz=FuzzCheck -fuzztime=10s ./internal/captcha
func FuzzCheck(f *testing.F) {
	s, err := NewService(newFakeStore(), fuzzMaster, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(mustMint(f, s, fuzzNow))
	f.Fuzz(func(t *testing.T, token string) {
		pass, err := s.Check(token, testIP, fuzzNow)
		if err != nil {
			if !errors.Is(err, verification.ErrCaptchaInvalid) {
				t.Fatalf("got %v, want ErrCaptchaInvalid", err)
			}
			return
		}
		if len(token) != passLen || !strings.HasPrefix(token, passPrefix) {
			t.Fatalf("accepted a token of the wrong shape: %q", token)
		}
		if !pass.Expires.After(fuzzNow) {
			t.Fatalf("accepted an expired token: %q expires %v", token, pass.Expires)
		}
		if id, err := base64.RawURLEncoding.DecodeString(pass.ID); err != nil || len(id) != 16 {
			t.Fatalf("pass ID %q is not 16 bytes of base64url", pass.ID)
		}
	})
}

// The fuzz target's key and clock; the valid seed in testdata was minted
// with them and expires in the year 2100, so it stays valid.
var (
	fuzzMaster = []byte("fuzz master key, 32 bytes long..")
	fuzzNow    = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
)

// The corpus's valid seed must stay valid, or the fuzzer would never start
// from the accepting path.
func TestFuzzSeedIsValid(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzCheck", "valid"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	lit := strings.TrimSuffix(strings.TrimPrefix(lines[len(lines)-1], "string("), ")")
	tok, err := strconv.Unquote(lit)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewService(newFakeStore(), fuzzMaster, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(tok, testIP, fuzzNow); err != nil {
		t.Errorf("seed %q: %v", tok, err)
	}
}
