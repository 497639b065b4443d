package captcha

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/verifykit/verifykit/internal/verification"
)

// The captcha_token format, version 2:
//
//	"v2." base64url( id (16 random bytes) | expiry (Unix seconds, 8 bytes BE) | tag (16 bytes) )
//
// tag is HMAC-SHA-256(passKey, "v2." | id | expiry | ip) cut to 128 bits,
// which is ample for a tag that is checked online and lives minutes. ip is the
// IP key that solved the captcha: it is bound by the tag, not carried in the
// token, so the token names no address and a send from another IP key fails
// the tag like a forgery. ip is last, so the concatenation is unambiguous.
// The version is inside the MAC, so another format cannot be passed off as
// this one (version 1 tokens, bound to no IP key, are refused).
const (
	passPrefix = "v2."
	passTagLen = 16
	passRawLen = idLen + 8 + passTagLen
)

// passLen is the exact length of every valid captcha_token.
var passLen = len(passPrefix) + base64.RawURLEncoding.EncodedLen(passRawLen)

// mint returns a new captcha_token for the IP key ip, valid for s.ttl from
// now. Its expiry is rounded up to the next whole second, so the token never
// lives shorter than the expires_in the client was told.
func (s *Service) mint(now time.Time, ip string) (string, error) {
	raw := make([]byte, passRawLen)
	if _, err := rand.Read(raw[:idLen]); err != nil {
		return "", fmt.Errorf("captcha: token id: %w", err)
	}
	exp := now.Add(s.ttl)
	sec := exp.Unix()
	if exp.Nanosecond() != 0 {
		sec++
	}
	binary.BigEndian.PutUint64(raw[idLen:idLen+8], uint64(sec))
	copy(raw[idLen+8:], s.passTag(raw[:idLen+8], ip))
	return passPrefix + base64.RawURLEncoding.EncodeToString(raw), nil
}

func (s *Service) passTag(body []byte, ip string) []byte {
	m := hmac.New(sha256.New, s.passKey)
	m.Write([]byte(passPrefix))
	m.Write(body)
	m.Write([]byte(ip))
	return m.Sum(nil)[:passTagLen]
}

// Check verifies a captcha_token (the captcha token of a send from the IP
// key ip) without touching the database: it returns
// verification.ErrCaptchaInvalid for anything malformed, forged, expired
// (from the instant of its expiry) or solved from another IP key, else the
// token's pass. The tag is compared in constant time and
// before the expiry is read, so nothing of an unsigned token is believed.
//
// Check does not bound the token's uses: the send's reservation counts them
// under the pass's ID, which is what stops a replay beyond them, and may drop
// that record once Expires has passed because Check refuses the token from
// then on.
func (s *Service) Check(token, ip string, now time.Time) (verification.CaptchaPass, error) {
	// A Service not built by NewService has no key; an empty HMAC key would
	// let anyone mint tokens, so it accepts none.
	if len(s.passKey) == 0 || len(token) != passLen || !strings.HasPrefix(token, passPrefix) {
		return verification.CaptchaPass{}, verification.ErrCaptchaInvalid
	}
	// Strict decoding refuses non-zero trailing bits, so one token has one
	// spelling and cannot be replayed under another.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token[len(passPrefix):])
	if err != nil || len(raw) != passRawLen {
		return verification.CaptchaPass{}, verification.ErrCaptchaInvalid
	}
	body, tag := raw[:idLen+8], raw[idLen+8:]
	if !hmac.Equal(tag, s.passTag(body, ip)) {
		return verification.CaptchaPass{}, verification.ErrCaptchaInvalid
	}
	sec := binary.BigEndian.Uint64(raw[idLen : idLen+8])
	exp := time.Unix(int64(sec), 0)
	if !now.Before(exp) {
		return verification.CaptchaPass{}, verification.ErrCaptchaInvalid
	}
	return verification.CaptchaPass{
		ID:      base64.RawURLEncoding.EncodeToString(raw[:idLen]),
		Expires: exp,
	}, nil
}
