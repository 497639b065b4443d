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
	ips        map[string]*ring // accepted sends per IP key
	verifyIPs  map[string]*ring // verifies of live codes per IP key
	captchaIPs map[string]*ring // captcha images per IP key
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
	slots     ring
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

// New returns an empty store enforcing limits, in which the given normalised
// identities exist as users.
func New(limits verification.Limits, users []string) *Store {
	s := &Store{
		limits:     limits,
		targets:    map[string]*target{},
		ips:        map[string]*ring{},
		verifyIPs:  map[string]*ring{},
		captchaIPs: map[string]*ring{},
		users:      map[string]bool{},
		challenges: map[string]*challenge{},
		tokens:     map[string]*tokenUses{},
		keys:       map[string]*idemItem{},
	}
	for _, u := range users {
		s.users[u] = true
	}
	return s
}

// Exists reports whether identity is a user.
func (s *Store) Exists(_ context.Context, identity string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[identity], nil
}

// LocalLookups marks Exists as a lookup in memory
// (verification.LocalUsers): the service calls it in line.
func (s *Store) LocalLookups() {}

var _ verification.LocalUsers = (*Store)(nil)

// Reserve commits r or returns the refusal that SPEC §3.4a names first.
func (s *Store) Reserve(_ context.Context, r verification.Reservation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(r.Now)
	// A held key wins over every other answer: it replays or refuses
	// without touching anything else.
	if err := s.idempotencyHit(r); err != nil {
		return err
	}

	ip := s.ips[r.IP]
	if ip == nil {
		ip = newRing(s.limits.IPCap)
	}
	// A new target's item is only kept if the send is accepted.
	t := s.targets[r.Handle]
	if t == nil {
		t = &target{slots: ring{t: make([]int64, s.limits.TargetCap)}}
	}
	var userRefusal error
	switch exists := s.users[r.Identity]; {
	case r.Require == verification.RequireUser && !exists:
		userRefusal = verification.ErrUserNotFound
	case r.Require == verification.RequireNoUser && exists:
		userRefusal = verification.ErrUserExists
	}
	// The pumping refusals come before every other limit, and spend nothing.
	if err := s.pump.judge(r).Refusal(r.CaptchaID != ""); err != nil {
		return err
	}
	tok := s.tokens[r.CaptchaID]
	captchaUsed := tok != nil && tok.n >= s.limits.CaptchaTokenUses
	j := s.limits.Judge(ip, &t.slots, r.Now)
	if err, spendIP := j.Refusal(r.CaptchaID != "", r.CaptchaID != "" && captchaUsed, userRefusal); err != nil {
		if spendIP {
			ip.push(r.Now.UnixMilli())
			s.ips[r.IP] = ip
		}
		return err
	}

	ip.push(r.Now.UnixMilli())
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
	t.slots.push(r.Now.UnixMilli())
	// The new code replaces the old one (attempts and used start afresh).
	*t = target{
		slots:     t.slots,
		nonce:     r.Nonce,
		codeHash:  r.CodeHash,
		expiresAt: r.ExpiresAt,
		rec:       verification.Record{Identity: r.Identity, Channel: r.Channel, Target: r.Target},
	}
	s.targets[r.Handle] = t
	return nil
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
	t.slots.pop()
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
// rings, or answers rate_limit_exceeded with the wait until the oldest of the
// last n events leaves the window.
func spendWindow(rings map[string]*ring, key string, n int, window time.Duration, now time.Time) error {
	r := rings[key]
	if r == nil {
		r = newRing(n)
	}
	cut := now.Add(-window).UnixMilli()
	if t := r.Newest(n); t > cut {
		return verification.RequestsLimited(ceilSeconds(time.Duration(t-cut) * time.Millisecond))
	}
	r.push(now.UnixMilli())
	rings[key] = r
	return nil
}

func ceilSeconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
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
	for _, rings := range []map[string]*ring{s.ips, s.verifyIPs, s.captchaIPs} {
		for k, sl := range rings {
			if sl.Newest(1) <= ipCut {
				delete(rings, k)
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

// ring keeps the times of a key's last n accepted events, like
// verification.Slots, but pushes in O(1), so large limits (load tests) cost
// nothing per send.
type ring struct {
	t    []int64
	next int // where the next push goes: the oldest slot
}

func newRing(n int) *ring { return &ring{t: make([]int64, n)} }

func (r *ring) push(now int64) {
	r.t[r.next] = now
	r.next = (r.next + 1) % len(r.t)
}

// pop undoes the newest push; the event it overwrote was outside the window
// (that is why the push was allowed), so zero stands in for it.
func (r *ring) pop() {
	r.next = (r.next - 1 + len(r.t)) % len(r.t)
	r.t[r.next] = 0
}

// Newest implements verification.Window.
func (r *ring) Newest(k int) int64 {
	if k < 1 || k > len(r.t) {
		return 0
	}
	return r.t[(r.next-k+len(r.t))%len(r.t)]
}
