// Package memstore is the embedded store of local mode: codes, limits,
// captchas and a user directory in memory, with the same semantics as the
// DynamoDB store (both pass internal/storetest). One mutex makes every
// operation atomic, as a DynamoDB condition or transaction does.
package memstore

import (
	"context"
	"crypto/subtle"
	"sync"
	"time"

	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/verification"
)

// Store keeps everything in memory. The zero value is not usable; call New.
type Store struct {
	limits verification.Limits

	mu         sync.Mutex
	targets    map[string]*target
	ips        map[string]verification.Slots // accepted sends per IP key
	verifyIPs  map[string]verification.Slots // verifies of live codes per IP key
	captchaIPs map[string]verification.Slots // captcha images per IP key
	users      map[string]bool
	challenges map[string]*challenge
	tokens     map[string]*tokenUses // captcha token id -> its spent uses
	keys       map[string]*idemItem  // idempotency key id -> its claim (idempotency.go)
	pump       pumping
	lastSweep  time.Time
}

// tokenUses is what a captcha token has spent, kept until it expires.
type tokenUses struct {
	n   int
	exp time.Time
}

type target struct {
	slots     verification.Slots
	nonce     string
	codeHash  string
	attempts  int
	expiresAt time.Time
	used      bool
	rec       verification.Record
}

type challenge struct {
	answerHash string
	attempts   int
	expiresAt  time.Time
	used       bool
}

// Options are the rules a store enforces and the users it starts with.
type Options struct {
	Limits verification.Limits
	// Pumping are the SMS pumping defences (zero: all off).
	Pumping verification.Pumping
	// Users are the normalised identities that exist as users.
	Users []string
}

// New returns an empty store enforcing o.
func New(o Options) *Store {
	s := &Store{
		limits:     o.Limits,
		targets:    map[string]*target{},
		ips:        map[string]verification.Slots{},
		verifyIPs:  map[string]verification.Slots{},
		captchaIPs: map[string]verification.Slots{},
		users:      map[string]bool{},
		challenges: map[string]*challenge{},
		tokens:     map[string]*tokenUses{},
		keys:       map[string]*idemItem{},
	}
	for _, u := range o.Users {
		s.users[u] = true
	}
	s.pump = newPumping(o.Pumping)
	return s
}

var _ verification.Store = (*Store)(nil)

// Reserve commits r or returns the refusal the order of precedence names
// first (verification.Store). The user directory is a map under the same
// lock, so an ANY send's lookup is one read of it.
func (s *Store) Reserve(_ context.Context, r verification.Reservation) (isUser bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(r.Now)
	// A held key wins over every other answer: it replays or refuses
	// without touching anything else.
	if err := s.idempotencyHit(r); err != nil {
		return false, err
	}

	ip := s.ips[r.IP]
	if ip == nil {
		ip = make(verification.Slots, s.limits.IPCap)
	}
	// A new target's item is only kept if the send is accepted.
	t := s.targets[r.Handle]
	if t == nil {
		t = &target{slots: make(verification.Slots, s.limits.TargetCap)}
	}
	exists := s.users[r.Identity]
	var userRefusal error
	switch {
	case r.Require == verification.RequireUser && !exists:
		userRefusal = verification.ErrUserNotFound
	case r.Require == verification.RequireNoUser && exists:
		userRefusal = verification.ErrUserExists
	}
	// The pumping refusals come before every other limit, and spend nothing.
	if err := s.pump.judge(r).Refusal(r.CaptchaID != ""); err != nil {
		return false, err
	}
	tok := s.tokens[r.CaptchaID]
	captchaUsed := tok != nil && tok.n >= s.limits.CaptchaTokenUses
	j := s.limits.Judge(ip, t.slots, r.Now)
	if err, spendIP := j.Refusal(r.CaptchaID != "", captchaUsed, userRefusal); err != nil {
		if spendIP {
			ip.Push(r.Now.UnixMilli())
			s.ips[r.IP] = ip
		}
		return false, err
	}

	ip.Push(r.Now.UnixMilli())
	s.ips[r.IP] = ip
	s.pump.send(r)
	if r.CaptchaID != "" {
		if tok == nil {
			tok = &tokenUses{exp: r.CaptchaExp}
			s.tokens[r.CaptchaID] = tok
		}
		tok.n++
	}
	s.claimIdempotency(r)
	t.slots.Push(r.Now.UnixMilli())
	// The new code replaces the old one (attempts and used start afresh).
	*t = target{
		slots:     t.slots,
		nonce:     r.Nonce,
		codeHash:  r.CodeHash,
		expiresAt: r.ExpiresAt,
		rec:       verification.Record{Identity: r.Identity, Channel: r.Channel, Target: r.Target},
	}
	s.targets[r.Handle] = t
	return exists, nil
}

// Release removes r's code and gives back its cooldown slot, unless a newer
// send replaced it. The IP budget stays spent.
func (s *Store) Release(_ context.Context, r verification.Reservation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.targets[r.Handle]
	if t == nil || t.nonce != r.Nonce {
		return nil
	}
	t.slots.Pop()
	*t = target{slots: t.slots}
	return nil
}

// Consume counts a guess, then compares it (verification.Store): under the
// lock nothing can come between the two, so this is the order the DynamoDB
// store needs conditions for. A dead code is refused before the IP key's
// verify budget, which a live code's guess spends.
func (s *Store) Consume(_ context.Context, a verification.Attempt) (verification.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(a.Now)
	t := s.targets[a.Handle]
	if t == nil || t.nonce == "" || subtle.ConstantTimeCompare([]byte(t.nonce), []byte(a.Nonce)) != 1 ||
		t.used || !a.Now.Before(t.expiresAt) || t.attempts >= a.MaxAttempts {
		return verification.Record{}, verification.ErrExpired
	}
	if err := spendWindow(s.verifyIPs, a.IP, s.limits.VerifyIPCap, s.limits.IPWindow, a.Now); err != nil {
		return verification.Record{}, err
	}
	t.attempts++
	if subtle.ConstantTimeCompare([]byte(t.codeHash), []byte(a.CodeHash)) == 1 {
		t.used = true
		s.pump.verified(t.rec, a.Now)
		return t.rec, nil
	}
	if left := a.MaxAttempts - t.attempts; left > 0 {
		return verification.Record{}, verification.WrongCode(left)
	}
	return verification.Record{}, s.limits.TooManyAttempts(t.expiresAt.Add(-s.limits.CodeTTL), a.Now)
}

// spendWindow takes one event of key's rolling budget of n per window in
// windows, or answers rate_limit_exceeded with the wait until the oldest of
// the last n events leaves the window.
func spendWindow(windows map[string]verification.Slots, key string, n int, window time.Duration, now time.Time) error {
	r := windows[key]
	if r == nil {
		r = make(verification.Slots, n)
	}
	if w := r.Wait(n, window, now); w > 0 {
		return verification.RequestsLimitedFor(w)
	}
	r.Push(now.UnixMilli())
	windows[key] = r
	return nil
}

// PutChallenge stores a new captcha challenge, spending one of its IP key's
// captcha images.
func (s *Store) PutChallenge(_ context.Context, c captcha.Challenge) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(c.Now)
	if err := spendWindow(s.captchaIPs, c.IP, s.limits.CaptchaIPCap, s.limits.IPWindow, c.Now); err != nil {
		return err
	}
	s.challenges[c.ID] = &challenge{answerHash: c.AnswerHash, expiresAt: c.ExpiresAt}
	return nil
}

// SolveChallenge counts an answer, then compares it: right solves the
// challenge, wrong leaves the attempt counted.
func (s *Store) SolveChallenge(_ context.Context, v captcha.Solve) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.challenges[v.ID]
	switch {
	case c == nil || !v.Now.Before(c.expiresAt) || c.attempts >= v.MaxAttempts:
		return captcha.ErrExpired
	case c.used:
		return captcha.ErrUsed
	}
	c.attempts++
	if subtle.ConstantTimeCompare([]byte(c.answerHash), []byte(v.AnswerHash)) == 1 {
		c.used = true
		return nil
	}
	return captcha.ErrWrong
}

// sweep drops entries that can no longer matter, at most once a minute, so a
// long-running local server does not grow without bound (the role TTL plays
// in DynamoDB).
func (s *Store) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < time.Minute {
		return
	}
	s.lastSweep = now
	s.pump.sweep(now)
	dayCut := now.Add(-s.limits.TargetWindow).UnixMilli()
	ipCut := now.Add(-s.limits.IPWindow).UnixMilli()
	for k, t := range s.targets {
		if t.slots.Newest(1) <= dayCut && !now.Before(t.expiresAt) {
			delete(s.targets, k)
		}
	}
	for _, windows := range []map[string]verification.Slots{s.ips, s.verifyIPs, s.captchaIPs} {
		for k, sl := range windows {
			if sl.Newest(1) <= ipCut {
				delete(windows, k)
			}
		}
	}
	for k, c := range s.challenges {
		if !now.Before(c.expiresAt) {
			delete(s.challenges, k)
		}
	}
	for k, tok := range s.tokens {
		if !now.Before(tok.exp) {
			delete(s.tokens, k)
		}
	}
	s.sweepIdempotency(now)
}
