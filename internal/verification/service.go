// Package verification is the domain of the service: sending one-time codes
// by SMS and email and checking them. It knows no AWS and no HTTP type; it
// owns the small interfaces it needs (Store, Sender, CaptchaTokens,
// TokenIssuer) and the catalogue of errors it answers with.
//
// One thing here is written for speed rather than plainness: Keys keeps its
// HMAC states in a sync.Pool (ids.go), because building an HMAC costs more
// than hashing a request's few bytes. It serves internal/app's
// BenchmarkSendEmail and BenchmarkVerifyWrong (go test -run '^$' -bench
// 'SendEmail|VerifyWrong' -benchmem ./internal/app): without the pool a send
// makes 103 allocations (8.9 KB) instead of 61 (5.5 KB), a wrong verify 63
// (5.3 KB) instead of 20 (1.9 KB), and on a shared 2-core machine the wrong
// verify took a median 84 µs instead of 47 µs.
package verification

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// TokenIssuer signs the verification_token of a verified code.
type TokenIssuer interface {
	Issue(v Verified, now time.Time) (token string, err error)
}

// Verified is what a right code proves, with the is_user answer of its send.
type Verified struct {
	Record
	IsUser bool
}

// Service sends and verifies codes. Build it with New.
type Service struct {
	store       Store
	idempotency IdempotencyStore
	senders     map[Channel]Sender
	captcha     CaptchaTokens
	tokens      TokenIssuer
	breaker     BreakerObserver
	keys        *Keys
	phones      *PhoneParser
	limits      Limits
	pumping     Pumping
	tokenTTL    time.Duration
	now         func() time.Time

	watch *BreakerWatch
}

// Deps are the ports the service works through.
type Deps struct {
	Store Store
	// Idempotency records the answers of sends with an Idempotency-Key;
	// without it, such a send fails (internal_error) before any limit.
	Idempotency IdempotencyStore
	// Senders by channel; a channel without a sender is disabled.
	Senders map[Channel]Sender
	// Captcha checks captcha tokens; without it, every x-captcha-token is
	// refused as captcha_invalid.
	Captcha CaptchaTokens
	Tokens  TokenIssuer
	// Breaker, if set, hears of SMS pumping breaker transitions, which
	// Watch derives (nil: the service keeps a watch of its own).
	Breaker BreakerObserver
	Watch   *BreakerWatch
}

// Options are the service's settings.
type Options struct {
	Keys   *Keys
	Phones *PhoneParser
	Limits Limits
	// Pumping are the SMS pumping defences (zero: all off).
	Pumping  Pumping
	TokenTTL time.Duration
	// Now is the clock (default: time.Now).
	Now func() time.Time
}

// New builds the service.
func New(d Deps, o Options) *Service {
	if d.Captcha == nil {
		d.Captcha = noCaptcha{}
	}
	if d.Breaker == nil {
		d.Breaker = noBreaker{}
	}
	if d.Watch == nil {
		d.Watch = &BreakerWatch{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Service{
		store: d.Store, idempotency: d.Idempotency, senders: d.Senders,
		captcha: d.Captcha, tokens: d.Tokens, breaker: d.Breaker, watch: d.Watch,
		keys: o.Keys, phones: o.Phones, limits: o.Limits, pumping: o.Pumping,
		tokenTTL: o.TokenTTL, now: o.Now,
	}
}

// noCaptcha refuses every captcha token: the service was built without
// captchas.
type noCaptcha struct{}

func (noCaptcha) Check(string, string, time.Time) (CaptchaPass, error) {
	return CaptchaPass{}, ErrCaptchaInvalid
}

// noBreaker hears breaker transitions and does nothing with them.
type noBreaker struct{}

func (noBreaker) Transition(BreakerTransition) {}

// SendRequest is a send as the API received it. Nil pointers are absent
// fields; the HTTP adapter has already refused wrong JSON types.
type SendRequest struct {
	Target       *string
	PhoneNumber  *string
	Email        *string
	Locale       string
	CaptchaToken *string // the x-captcha-token header or captcha_token query parameter, nil when absent
	IP           string  // as the platform observed it, never a client header
	// IdempotencyKey is the Idempotency-Key header, nil when absent; Body
	// is the request body's bytes, whose fingerprint goes with the key.
	IdempotencyKey *string
	Body           []byte
}

// SendResult is an accepted send.
type SendResult struct {
	VerificationID string
	ExpiresIn      int
	IsUser         bool
	// OutcomeUnknown: the provider timed out after the request went out. The
	// code and cooldown are kept; logs and metrics report it.
	OutcomeUnknown bool
	// Replay, when set, is the first answer of an earlier request with the
	// same Idempotency-Key and body: answer it again, nothing was done.
	Replay *Answer
	// Idempotency, when set, is the send's hold on its key: give its answer
	// to RememberAnswer (also for a refusal, which Send returns with it).
	Idempotency *IdempotencyTicket
}

// Send validates a send, reserves it atomically and delivers the code.
// addr is the normalised recipient whenever the input was valid, so callers
// can log it (masked) even for refusals.
func (s *Service) Send(ctx context.Context, req SendRequest) (res SendResult, addr Address, err error) {
	if req.IdempotencyKey != nil && !validIdempotencyKey(*req.IdempotencyKey) {
		return res, addr, Errorf(KindInvalidRequest, "Idempotency-Key must be 1 to %d visible ASCII characters", MaxIdempotencyKey)
	}
	target, addr, err := s.parseSend(req)
	if err != nil {
		return res, addr, err
	}
	sender := s.senders[addr.Channel]
	if sender == nil {
		return res, addr, ErrChannelDisabled
	}
	// The send's own calls end releaseReserve before the caller's deadline,
	// so that the release of a failed send still fits before it.
	outer := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-releaseReserve))
		defer cancel()
	}
	now := s.now()
	var pass CaptchaPass
	if req.CaptchaToken != nil {
		if pass, err = s.captcha.Check(*req.CaptchaToken, req.IP, now); err != nil {
			return res, addr, err
		}
	}
	// The operator's block list comes after the input, channel and
	// captcha-token checks and before every limit, and spends nothing.
	if addr.Channel == SMS && s.pumping.Blocked(addr.Identity) {
		return res, addr, errPrefixListed
	}

	code, err := NewCode()
	if err != nil {
		return res, addr, fmt.Errorf("code: %w", err)
	}
	nonce, err := NewNonce()
	if err != nil {
		return res, addr, fmt.Errorf("nonce: %w", err)
	}
	r := Reservation{
		Handle:     s.keys.Handle(addr.Identity),
		IP:         req.IP,
		Nonce:      nonce,
		CodeHash:   s.keys.CodeHash(nonce, code),
		Identity:   addr.Identity,
		Channel:    addr.Channel,
		Target:     target,
		CaptchaID:  pass.ID,
		CaptchaExp: pass.Expires,
		Now:        now,
		ExpiresAt:  now.Add(s.limits.CodeTTL),
	}
	if r.Idempotency = s.idempotent(req, nonce, now); r.Idempotency != nil && s.idempotency == nil {
		return res, addr, errors.New("idempotency: no store")
	}
	if addr.Channel == SMS {
		r.Prefix = s.pumping.Counted(addr.Identity)
		if n := s.pumping.Shards(); n > 0 {
			// A random shard spreads the sends evenly over the budget's
			// items; it decides load, not security.
			r.CountBudget, r.BudgetShard = true, rand.IntN(n)
		}
	}

	// USER and NOT_USER check the user inside the reservation; for ANY the
	// store looks the user up, and either way Reserve answers is_user.
	switch target {
	case TargetUser:
		r.Require = RequireUser
	case TargetNotUser:
		r.Require = RequireNoUser
	}
	res.IsUser, err = s.store.Reserve(ctx, r)
	committed := err == nil || errors.Is(err, ErrUserLookup)
	if !committed {
		if pr, ok := errors.AsType[*PrefixRefusal](err); ok {
			s.noteTransition(s.watch.refused(pr))
		}
		if r.Idempotency == nil {
			return res, addr, err
		}
		// A held key: its answer again, or its refusal. Anything else is
		// this request's own answer, which is recorded unless it is a 5xx.
		if h, held := errors.AsType[*IdempotencyHit](err); held {
			res.Replay, err = h.answer(r.Idempotency)
			return res, addr, err
		}
		res.Idempotency = &IdempotencyTicket{send: *r.Idempotency}
		return res, addr, err
	}
	if r.Idempotency != nil {
		res.Idempotency = &IdempotencyTicket{send: *r.Idempotency, claimed: true}
	}
	if r.Prefix != "" {
		s.noteTransition(s.watch.accepted(r.Prefix, r.CaptchaID != ""))
	}
	if err != nil { // the reservation stands, without the answer of its user lookup
		s.release(outer, r)
		return res, addr, err
	}
	if res.VerificationID, err = s.keys.VerificationID(nonce, r.Handle, res.IsUser); err != nil {
		s.release(outer, r)
		return res, addr, err
	}

	err = sender.Send(ctx, Message{Channel: addr.Channel, To: addr.To, Code: code, TTL: s.limits.CodeTTL, Locale: req.Locale})
	switch {
	case err == nil:
	case errors.Is(err, ErrOutcomeUnknown):
		// The message may still arrive: keep the code and the cooldown so the
		// user can use it and cannot trigger a second message at once.
		res.OutcomeUnknown = true
	default:
		s.release(outer, r)
		return SendResult{}, addr, &Error{Kind: KindSendFailed, Description: "Failed to send the verification code, please try again", Err: err}
	}
	res.ExpiresIn = int(s.limits.CodeTTL / time.Second)
	return res, addr, nil
}

func (s *Service) noteTransition(t BreakerTransition, changed bool) {
	if changed {
		s.breaker.Transition(t)
	}
}

// releaseReserve is the part of a send's deadline kept for the release: one
// conditional UpdateItem, milliseconds when DynamoDB is well.
const releaseReserve = 500 * time.Millisecond

// release gives a reservation back even when the request's context is
// already cancelled or past its deadline: a half-done send must not keep the
// user's cooldown. ctx is the caller's: the release may run until its
// deadline (releaseReserve after the send's own), and never past it, since
// a function stopped by Lambda would not answer at all. Without a deadline
// (a local server) it gets 3 s.
func (s *Service) release(ctx context.Context, r Reservation) {
	deadline := time.Now().Add(3 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	_ = s.store.Release(ctx, r) // best effort; the code expires on its own
	if r.Idempotency != nil {
		// Best effort too: a claim left behind ends with its lease.
		_ = s.idempotency.ReleaseKey(ctx, *r.Idempotency)
	}
}

func (s *Service) parseSend(req SendRequest) (Target, Address, error) {
	if (req.PhoneNumber == nil) == (req.Email == nil) {
		return "", Address{}, Errorf(KindInvalidRequest, "exactly one of phone_number or email is required")
	}
	// An absent (or null) target is ANY: the CloudBase JS SDK's sign-in and
	// sign-up flows send none, and ANY is what they mean (send whether or
	// not the user exists; the answer's is_user tells them which).
	target := TargetAny
	var err error
	if req.Target != nil {
		if target, err = ParseTarget(*req.Target); err != nil {
			return "", Address{}, err
		}
	}
	var addr Address
	if req.PhoneNumber != nil {
		addr, err = s.phones.Parse(*req.PhoneNumber)
	} else {
		addr, err = ParseEmail(*req.Email)
	}
	return target, addr, err
}

// VerifyRequest is a verify as the API received it.
type VerifyRequest struct {
	VerificationID   *string
	VerificationCode *string
	IP               string // as the platform observed it, never a client header
}

// VerifyResult is a verified code's token.
type VerifyResult struct {
	Token     string
	ExpiresIn int
	Verified  Verified
}

// Verify checks a code. A right code is spent at once; a wrong one (of any
// shape) counts an attempt.
func (s *Service) Verify(ctx context.Context, req VerifyRequest) (VerifyResult, error) {
	if req.VerificationID == nil || req.VerificationCode == nil {
		return VerifyResult{}, Errorf(KindInvalidRequest, "verification_id and verification_code are required")
	}
	nonce, handle, isUser, err := s.keys.ParseVerificationID(*req.VerificationID)
	if err != nil {
		return VerifyResult{}, err
	}
	now := s.now()
	rec, err := s.store.Consume(ctx, Attempt{
		Handle:      handle,
		Nonce:       nonce,
		CodeHash:    s.keys.CodeHash(nonce, *req.VerificationCode),
		IP:          req.IP,
		Now:         now,
		MaxAttempts: s.limits.MaxAttempts,
	})
	if err != nil {
		return VerifyResult{}, err
	}
	v := Verified{Record: rec, IsUser: isUser}
	tok, err := s.tokens.Issue(v, now)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("issue token: %w", err)
	}
	return VerifyResult{Token: tok, ExpiresIn: int(s.tokenTTL / time.Second), Verified: v}, nil
}
