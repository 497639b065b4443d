// Package captcha issues image captchas, checks their answers and mints the
// captcha_token that lets an abnormal send through: POST captcha/data, POST
// captcha/data/verify, and the send's captcha_required answer (README, "API").
//
// A captcha has two tokens with two lifetimes. The image token names one
// challenge in the Store, which keeps only a keyed hash of its answer and
// counts wrong answers there, atomically. The captcha_token returned by a
// right answer is self-contained and signed, so that a send can refuse a
// forged or expired one, or one solved from another IP key, before it spends a
// database call; its bounded number of uses is enforced by the send's
// reservation, which counts them under its ID.
package captcha

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/verifykit/verifykit/internal/kdf"
	"github.com/verifykit/verifykit/internal/verification"
)

// Defaults of a Service. The TTL is CAPTCHA_TTL_SECONDS's default (README,
// "Configuration"); three wrong answers kill a captcha, so guessing costs a
// new image (and a store write) every three tries while a person who mistypes
// once is not punished.
const (
	DefaultTTL         = 300 * time.Second
	DefaultMaxAttempts = 3
)

// idLen is the random part of an image token: 128 bits, so that tokens
// cannot be guessed or enumerated.
const idLen = 16

// Service issues and solves image captchas and checks captcha tokens. It
// implements verification.CaptchaTokens. Build it with NewService.
type Service struct {
	store       Store
	now         func() time.Time
	ttl         time.Duration // of an image and of the captcha_token it yields
	maxAttempts int           // answers a challenge takes
	length      int           // characters an image shows
	onIssue     func(token, answer string)

	answerKey []byte // HMAC key of the stored answer hashes
	passKey   []byte // HMAC key of the captcha_token tags
}

var _ verification.CaptchaTokens = (*Service)(nil)

// Options are a Service's settings; a zero field takes its default.
type Options struct {
	// Now is the clock; time.Now if nil. Tests inject a fixed one.
	Now func() time.Time
	// TTL is the validity of an image and of the captcha_token it yields;
	// DefaultTTL if zero.
	TTL time.Duration
	// MaxAttempts is the number of answers a challenge takes: each is
	// counted before it is compared, and the challenge dies when they are
	// spent without a right one (CAPTCHA_MAX_ATTEMPTS); DefaultMaxAttempts
	// if zero.
	MaxAttempts int
	// Length is the number of characters an image shows, MinLength to
	// MaxLength (CAPTCHA_LENGTH); DefaultLength if zero.
	Length int
	// OnIssue, when set, receives every issued image token with its answer.
	// It exists only for local development (the /dev/outbox lists captchas
	// with their answers); production wiring leaves it nil. The answer is
	// never logged or returned anywhere else.
	OnIssue func(token, answer string)
}

// NewService returns a Service over store with keys derived from master (the
// server's HMAC secret, at least 32 bytes) and the settings of o. Each key
// is derived under its own label, so neither can be confused with the other
// or with a key of package verification.
func NewService(store Store, master []byte, o Options) (*Service, error) {
	if store == nil {
		return nil, errors.New("captcha: nil store")
	}
	if err := kdf.Check("captcha: HMAC key", master); err != nil {
		return nil, err
	}
	s := &Service{
		store:       store,
		now:         o.Now,
		ttl:         o.TTL,
		maxAttempts: o.MaxAttempts,
		length:      o.Length,
		onIssue:     o.OnIssue,
		answerKey:   kdf.Derive(master, "captcha answer v1"),
		passKey:     kdf.Derive(master, "captcha token v1"),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.maxAttempts == 0 {
		s.maxAttempts = DefaultMaxAttempts
	}
	if s.length == 0 {
		s.length = DefaultLength
	}
	return s, nil
}

// Image is an issued captcha, the body of POST /auth/v1/captcha/data.
type Image struct {
	// Data is the picture as a data URI: "data:image/png;base64,...".
	Data string
	// Token names the challenge when it is solved: opaque, 128 random bits.
	Token string
	// ExpiresIn is the challenge's validity in whole seconds.
	ExpiresIn int
}

// Pass is a solved captcha, the body of POST /auth/v1/captcha/data/verify.
type Pass struct {
	// Token is the captcha_token a send carries as x-captcha-token.
	Token string
	// ExpiresIn is its validity in whole seconds.
	ExpiresIn int
}

// New draws a new captcha for the IP key ip, stores the keyed hash of its
// answer and returns the image with its token. Each image spends one of the
// IP key's rolling budget (rate_limit_exceeded past it).
func (s *Service) New(ctx context.Context, ip string) (Image, error) {
	answer, pic, err := render(s.length)
	if err != nil {
		return Image{}, fmt.Errorf("captcha: draw: %w", err)
	}
	raw := make([]byte, idLen)
	if _, err := rand.Read(raw); err != nil {
		return Image{}, fmt.Errorf("captcha: token: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(raw)
	now := s.now()
	err = s.store.PutChallenge(ctx, Challenge{
		ID:         id,
		AnswerHash: s.answerHash(id, answer),
		ExpiresAt:  now.Add(s.ttl),
		IP:         ip,
		Now:        now,
	})
	if err != nil {
		if verification.KindOf(err) == verification.KindRateLimitExceeded {
			return Image{}, err
		}
		return Image{}, fmt.Errorf("captcha: store: %w", err)
	}
	if s.onIssue != nil {
		s.onIssue(id, answer)
	}
	return Image{
		Data:      "data:image/png;base64," + base64.StdEncoding.EncodeToString(pic),
		Token:     id,
		ExpiresIn: seconds(s.ttl),
	}, nil
}

// Solve checks key against the challenge named by token and, when it is
// right, returns a captcha_token bound to ip, the IP key of the solver: a send
// from another IP key cannot use it. Refusals are *verification.Error:
// invalid_captcha for a wrong key (the challenge dies at the MaxAttempts-th),
// captcha_expired for an unknown, malformed, expired or dead token, and
// captcha_used for one solved before. Store failures pass through wrapped
// (ErrUnavailable stays recognisable).
func (s *Service) Solve(ctx context.Context, token, key, ip string) (Pass, error) {
	// A token that is not one we could have issued cannot name a challenge:
	// refuse it without a database call.
	if !validID(token) {
		return Pass{}, refusal(verification.KindCaptchaExpired, nil)
	}
	// An empty key is a slip of the form (submitted before typing), not a
	// guess: no answer is empty, so refusing it without counting an attempt
	// gives an attacker nothing and spares the person one of their tries.
	if key == "" {
		return Pass{}, refusal(verification.KindInvalidCaptcha, nil)
	}
	now := s.now()
	err := s.store.SolveChallenge(ctx, Solve{
		ID:          token,
		AnswerHash:  s.answerHash(token, key),
		Now:         now,
		MaxAttempts: s.maxAttempts,
	})
	switch {
	case err == nil:
	case errors.Is(err, ErrWrong):
		return Pass{}, refusal(verification.KindInvalidCaptcha, err)
	case errors.Is(err, ErrExpired):
		return Pass{}, refusal(verification.KindCaptchaExpired, err)
	case errors.Is(err, ErrUsed):
		return Pass{}, refusal(verification.KindCaptchaUsed, err)
	default:
		return Pass{}, fmt.Errorf("captcha: solve: %w", err)
	}
	pass, err := s.mint(now, ip)
	if err != nil {
		return Pass{}, err
	}
	return Pass{Token: pass, ExpiresIn: seconds(s.ttl)}, nil
}

// answerHash is HMAC-SHA-256(answerKey, id || fold(answer)), base64url. The
// id is fixed-length, so the concatenation is unambiguous; binding the hash to
// the id means two challenges with one answer never store the same hash, and
// a hash copied from one challenge cannot solve another.
func (s *Service) answerHash(id, answer string) string {
	m := hmac.New(sha256.New, s.answerKey)
	m.Write([]byte(id))
	m.Write(fold(answer))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// fold lower-cases ASCII letters only. Answers are ASCII, and the key is
// "case-insensitive, otherwise exact": Unicode case mapping would let other
// characters (the Kelvin sign K folds to k) count as right, and nothing is
// trimmed.
func fold(s string) []byte {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return b
}

// validID reports whether token has the shape of an image token: the
// canonical base64url of exactly idLen bytes.
func validID(token string) bool {
	if len(token) != base64.RawURLEncoding.EncodedLen(idLen) {
		return false
	}
	// Strict refuses non-zero trailing bits, so each id has one spelling.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	return err == nil && len(raw) == idLen
}

// The people-facing descriptions of the refusals; none holds an answer.
var descriptions = map[verification.Kind]string{
	verification.KindInvalidCaptcha: "Wrong captcha text, please try again",
	verification.KindCaptchaExpired: "Captcha expired or invalid, please get a new one",
	verification.KindCaptchaUsed:    "Captcha already used, please get a new one",
}

func refusal(kind verification.Kind, cause error) *verification.Error {
	return &verification.Error{Kind: kind, Description: descriptions[kind], Err: cause}
}

// seconds is d in whole seconds, rounded up, as the API's expires_in.
func seconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
