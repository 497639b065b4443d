// Package storetest is the one contract both stores pass: the DynamoDB store
// (against DynamoDB Local) and the in-memory store run the same cases, so
// local mode behaves as the deployed service does.
//
// Times are injected through Reservation.Now, Attempt.Now and Solve.Now; no
// case sleeps. They lie in the future (2099), so that DynamoDB Local, which
// deletes TTL-expired items within seconds, never removes an item a case
// still looks at: "expired" is always decided by the store from the injected
// time, as it must be with TTL's lag in AWS.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/verification"
)

// Stores are the views of one store under test. Both must share state, in
// one database.
type Stores struct {
	Codes   verification.Store
	Captcha captcha.Store
}

// NewFunc returns a fresh, empty store enforcing limits and the SMS pumping
// defences p (zero: off), in which exactly the normalised identities users
// exist as users. It is called once per case, possibly from parallel tests.
type NewFunc func(t *testing.T, limits verification.Limits, p verification.Pumping, users []string) Stores

// T0 is the start of every case's clock: a midnight, so that "00:59" reads
// as what it says in the cases about clock hours.
var T0 = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)

// Limits are the limits of the cases unless one says otherwise: the
// service's defaults with the captcha gate off, so that cases about other
// rules need no captcha, and captcha tokens of one use, so that a case shows
// a spent token in one step (the cases about uses set their own).
func Limits() verification.Limits {
	return verification.Limits{
		Cooldown:         60 * time.Second,
		TargetCap:        10,
		TargetWindow:     24 * time.Hour,
		IPCap:            10,
		IPWindow:         time.Hour,
		MaxAttempts:      5,
		CodeTTL:          10 * time.Minute,
		VerifyIPCap:      60,
		CaptchaIPCap:     30,
		CaptchaTokenUses: 1,
	}
}

// AfterWrite is for the test wrapper of a store's database client, which
// calls it after each write returns (failed or not). When ctx comes from a
// case that holds the request, it tells the case that the request made a
// write and then waits until the case lets it go on. Stores without a
// database client (the memory store) never call it; their requests simply
// run to the end.
//
// This is how the count-first cases get a deterministic race: a guess that
// made its first write is held there, so a guess that comes after it finds
// that write committed and nothing that follows it.
func AfterWrite(ctx context.Context) {
	h, _ := ctx.Value(holdKey{}).(*hold)
	if h == nil {
		return
	}
	h.once.Do(func() { close(h.wrote) })
	<-h.release
}

type holdKey struct{}

// hold is one held request: wrote closes at its first write, release lets
// all the case's requests go on.
type hold struct {
	once    sync.Once
	wrote   chan struct{}
	release <-chan struct{}
}

// held starts f with a context that holds it after its first write, and
// returns once f made that write or returned. done closes when f returned.
func held(ctx context.Context, release <-chan struct{}, f func(ctx context.Context)) (done <-chan struct{}) {
	h := &hold{wrote: make(chan struct{}), release: release}
	d := make(chan struct{})
	go func() {
		defer close(d)
		f(context.WithValue(ctx, holdKey{}, h))
	}()
	select {
	case <-h.wrote:
	case <-d:
	}
	return d
}

// Run runs the contract against the stores newStore makes.
func Run(t *testing.T, newStore NewFunc) {
	t.Run("Reserve", func(t *testing.T) { t.Parallel(); runReserve(t, newStore) })
	t.Run("Release", func(t *testing.T) { t.Parallel(); runRelease(t, newStore) })
	t.Run("Consume", func(t *testing.T) { t.Parallel(); runConsume(t, newStore) })
	t.Run("Challenge", func(t *testing.T) { t.Parallel(); runChallenge(t, newStore) })
	t.Run("Users", func(t *testing.T) { t.Parallel(); runUsers(t, newStore) })
	t.Run("Concurrent", func(t *testing.T) { t.Parallel(); runConcurrent(t, newStore) })
	t.Run("CountFirst", func(t *testing.T) { t.Parallel(); runCountFirst(t, newStore) })
	t.Run("Budgets", func(t *testing.T) { t.Parallel(); runBudgets(t, newStore) })
	t.Run("Pumping", func(t *testing.T) { t.Parallel(); runPumping(t, newStore) })
}

// Outcome is the short form of a store's answer that the cases compare:
// "ok", the error kind, with "/N" for a rate limit's retry_after or a wrong
// code's attempts remaining, or the captcha refusal's text.
func Outcome(err error) string {
	var e *verification.Error
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &e) && (e.Kind == verification.KindRateLimitExceeded || e.Kind == verification.KindTooManyAttempts):
		return fmt.Sprintf("%s/%d", e.Kind, e.RetryAfter)
	case errors.As(err, &e) && e.AttemptsRemaining != nil:
		return fmt.Sprintf("%s/%d", e.Kind, *e.AttemptsRemaining)
	case errors.As(err, &e):
		return string(e.Kind)
	case errors.Is(err, captcha.ErrExpired), errors.Is(err, captcha.ErrUsed), errors.Is(err, captcha.ErrWrong):
		return err.Error()
	case errors.Is(err, verification.ErrUnavailable):
		return "unavailable: " + err.Error()
	}
	return "error: " + err.Error()
}

const (
	ok      = "ok"
	expired = "verification_expired"
	// tooMany is the last wrong code 1 s after the send: the code is dead and
	// the 60 s cooldown lets a new one be sent 59 s later.
	tooMany     = "too_many_attempts/59"
	notFound    = "user_not_found"
	userExists  = "user_already_exists"
	capRequired = "captcha_required"
	capInvalid  = "captcha_invalid"
)

func rate(seconds int) string { return fmt.Sprintf("rate_limit_exceeded/%d", seconds) }
func wrong(left int) string   { return fmt.Sprintf("invalid_verification_code/%d", left) }

// at is T0 plus a clock reading "h:m:s" given as a duration.
func at(d time.Duration) time.Time { return T0.Add(d) }

// sends builds reservations with unique nonces; the right code's hash is
// "right:"+nonce, so each reservation's code is its own.
type sends struct {
	mu  sync.Mutex
	seq int
}

func (s *sends) new(identity, ip string, now time.Time) verification.Reservation {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	nonce := fmt.Sprintf("nonce-%d", n)
	return verification.Reservation{
		Handle:     "handle:" + identity,
		IP:         ip,
		Nonce:      nonce,
		CodeHash:   "right:" + nonce,
		Identity:   identity,
		Channel:    verification.Email,
		Target:     verification.TargetAny,
		Require:    verification.RequireNothing,
		CaptchaExp: T0.Add(72 * time.Hour), // valid for every case's whole clock
		Now:        now,
		ExpiresAt:  now.Add(10 * time.Minute),
	}
}

// attempt is a verify of r at now with code hash h.
func attempt(r verification.Reservation, hash string, now time.Time) verification.Attempt {
	return verification.Attempt{Handle: r.Handle, Nonce: r.Nonce, CodeHash: hash, IP: "vip1", Now: now, MaxAttempts: 5}
}

func right(r verification.Reservation) string { return r.CodeHash }

// step is one send of a reservation scenario.
type step struct {
	at       time.Duration // since T0
	identity string
	ip       string
	require  verification.Requirement
	captcha  string // CaptchaID, "" for none
	want     string
}

func runReserve(t *testing.T, newStore NewFunc) {
	user := verification.RequireUser
	noUser := verification.RequireNoUser
	s := time.Second
	m := time.Minute
	h := time.Hour

	// The daily cap: TargetCap sends spaced by the cooldown, each from its
	// own IP so the IP budget plays no part.
	capSteps := []step{}
	for i := range 10 {
		capSteps = append(capSteps, step{at: time.Duration(i) * m, identity: "a", ip: fmt.Sprintf("ip%d", i), want: ok})
	}
	capSteps = append(capSteps,
		step{at: 10 * m, identity: "a", ip: "ipx", want: rate(24*3600 - 600)}, // oldest (0) + 24 h - now
		step{at: 24*h - s, identity: "a", ip: "ipx", want: rate(1)},
		step{at: 24 * h, identity: "a", ip: "ipx", want: ok},            // the oldest left the window
		step{at: 24*h + 30*s, identity: "a", ip: "ipy", want: rate(30)}, // cooldown again
		step{at: 24*h + 60*s, identity: "a", ip: "ipy", want: ok},       // the 00:01 send left
		step{at: 24*h + 90*s, identity: "a", ip: "ipz", want: rate(30)}, // cooldown, and 00:02 leaves in 30 s
		step{at: 24*h + 120*s, identity: "a", ip: "ipz", want: ok},
	)

	// The IP budget across distinct targets, at 00:59 and after the clock
	// hour turned: a fixed clock-hour counter would accept at 01:01.
	ipSteps := []step{}
	for i := range 10 {
		ipSteps = append(ipSteps, step{at: 59*m + time.Duration(i)*s, identity: fmt.Sprintf("t%d", i), ip: "ip1", want: ok})
	}
	ipSteps = append(ipSteps,
		step{at: 59*m + 30*s, identity: "u1", ip: "ip1", want: rate(3570)},
		step{at: h + m, identity: "u2", ip: "ip1", want: rate(3480)},
		step{at: h + m, identity: "u3", ip: "ip2", want: ok}, // another IP has its own budget
		step{at: h + 59*m, identity: "u4", ip: "ip1", want: ok},
		step{at: h + 59*m + 500*time.Millisecond, identity: "u5", ip: "ip1", want: rate(1)},
		step{at: h + 59*m + s, identity: "u5", ip: "ip1", want: ok},
	)

	// Refusals by the user check spend the IP budget: ten user_not_found
	// answers use it up, and then even a valid send is rate limited.
	enumSteps := []step{}
	for i := range 10 {
		enumSteps = append(enumSteps, step{at: time.Duration(i) * s, identity: fmt.Sprintf("nobody%d", i), ip: "ip1", require: user, want: notFound})
	}
	enumSteps = append(enumSteps,
		step{at: 10 * s, identity: "alice", ip: "ip1", want: rate(3590)},
		step{at: 11 * s, identity: "nobody", ip: "ip1", require: user, want: rate(3589)},
		step{at: 12 * s, identity: "alice", ip: "ip2", require: user, want: ok},
	)

	cases := []struct {
		name   string
		limits func(*verification.Limits)
		users  []string
		steps  []step
	}{
		{
			name: "cooldown",
			steps: []step{
				{at: 0, identity: "a", ip: "ip1", want: ok},
				{at: 10 * s, identity: "a", ip: "ip1", want: rate(50)},
				{at: 10 * s, identity: "a", ip: "ip2", want: rate(50)}, // across IPs
				{at: 59*s + 500*time.Millisecond, identity: "a", ip: "ip1", want: rate(1)},
				{at: 60 * s, identity: "a", ip: "ip1", want: ok},
				{at: 60 * s, identity: "b", ip: "ip1", want: ok}, // other targets are not affected
			},
		},
		{name: "daily cap is rolling", steps: capSteps},
		{name: "ip budget is rolling, not a clock hour", steps: ipSteps},
		{
			name:  "user checks",
			users: []string{"alice"},
			steps: []step{
				{at: 0, identity: "alice", ip: "ip1", require: user, want: ok},
				{at: 0, identity: "bob", ip: "ip1", require: user, want: notFound},
				{at: 0, identity: "carol", ip: "ip1", require: noUser, want: ok},
				{at: 2 * m, identity: "alice", ip: "ip1", require: noUser, want: userExists},
				{at: 2 * m, identity: "alice", ip: "ip1", want: ok}, // the refusals spent no cooldown
			},
		},
		{name: "user refusals spend the ip budget", users: []string{"alice"}, steps: enumSteps},
		{
			name:   "ip spent and cooldown: the longer wait",
			limits: func(l *verification.Limits) { l.IPCap = 2 },
			steps: []step{
				{at: 0, identity: "a", ip: "ip1", want: ok},
				{at: s, identity: "b", ip: "ip1", want: ok},
				{at: 2 * s, identity: "a", ip: "ip1", want: rate(3598)},
				{at: 2 * s, identity: "a", ip: "ip2", want: rate(58)},
			},
		},
		{
			name:   "cooldown beats the user check, which then spends nothing",
			limits: func(l *verification.Limits) { l.IPCap = 2 },
			steps: []step{
				{at: 0, identity: "bob", ip: "ip0", want: ok},
				{at: 10 * s, identity: "bob", ip: "ip1", require: user, want: rate(50)},
				{at: 11 * s, identity: "c1", ip: "ip1", want: ok},
				{at: 12 * s, identity: "c2", ip: "ip1", want: ok}, // ip1 still had its whole budget
				{at: 13 * s, identity: "c3", ip: "ip1", want: rate(3598)},
			},
		},
		{
			name: "gate beats the user check, which then spends nothing",
			limits: func(l *verification.Limits) {
				l.IPCap = 3
				l.CaptchaIPGate = 2
			},
			steps: []step{
				{at: 0, identity: "c1", ip: "ip1", want: ok},
				{at: s, identity: "c2", ip: "ip1", want: ok},
				{at: 2 * s, identity: "bob", ip: "ip1", require: user, want: capRequired},
				{at: 3 * s, identity: "c3", ip: "ip1", captcha: "k1", want: ok}, // the third of three
				{at: 4 * s, identity: "c4", ip: "ip1", captcha: "k2", want: rate(3596)},
				{at: 5 * s, identity: "c5", ip: "ip1", want: rate(3595)}, // ip spent beats the gate
			},
		},
		{
			name:   "cooldown beats the target gate",
			limits: func(l *verification.Limits) { l.CaptchaTgtGate = 1 },
			steps: []step{
				{at: 0, identity: "a", ip: "ip1", want: ok},
				{at: 10 * s, identity: "a", ip: "ip1", want: rate(50)},
				{at: 60 * s, identity: "a", ip: "ip1", want: capRequired},
				{at: 60 * s, identity: "a", ip: "ip1", captcha: "k1", want: ok},
			},
		},
		{
			name:  "used captcha beats the user check, not the cooldown",
			users: []string{"alice"},
			steps: []step{
				{at: 0, identity: "a", ip: "ip1", captcha: "k1", want: ok},
				{at: s, identity: "bob", ip: "ip2", require: user, captcha: "k1", want: capInvalid},
				{at: s, identity: "alice", ip: "ip2", require: noUser, captcha: "k1", want: capInvalid},
				{at: 2 * s, identity: "a", ip: "ip2", captcha: "k1", want: rate(58)},
			},
		},
		{
			name:   "ip gate",
			limits: func(l *verification.Limits) { l.CaptchaIPGate = 3 },
			steps: []step{
				{at: 0, identity: "t1", ip: "ip1", want: ok},
				{at: s, identity: "t2", ip: "ip1", want: ok},
				{at: 2 * s, identity: "t3", ip: "ip1", want: ok},
				{at: 3 * s, identity: "t4", ip: "ip1", want: capRequired},
				{at: 3 * s, identity: "t4", ip: "ip2", want: ok}, // per IP
				{at: 4 * s, identity: "t5", ip: "ip1", captcha: "k1", want: ok},
				{at: 5 * s, identity: "t6", ip: "ip1", captcha: "k1", want: capInvalid},
				{at: 5 * s, identity: "t6", ip: "ip1", captcha: "k2", want: ok},
				{at: h + s, identity: "t7", ip: "ip1", want: capRequired}, // 00:00:02, :04, :05 in the last hour
				{at: h + 2*s, identity: "t7", ip: "ip1", want: ok},        // :04 and :05 only
			},
		},
		{
			name:   "target gate",
			limits: func(l *verification.Limits) { l.CaptchaTgtGate = 3 },
			steps: []step{
				{at: 0, identity: "a", ip: "ip1", want: ok},
				{at: 10 * m, identity: "a", ip: "ip2", want: ok},
				{at: 20 * m, identity: "a", ip: "ip3", want: ok},
				{at: 30 * m, identity: "a", ip: "ip4", want: capRequired},
				{at: 30 * m, identity: "b", ip: "ip4", want: ok}, // per target
				{at: 30 * m, identity: "a", ip: "ip4", captcha: "k1", want: ok},
				{at: 24*h + 15*m, identity: "a", ip: "ip5", want: ok},          // rolling: only 00:20 and 00:30 are left
				{at: 24*h + 16*m, identity: "a", ip: "ip5", want: capRequired}, // 00:20, 00:30 and the one at 00:15
			},
		},
		{
			name: "captcha token is single-use even when no gate applies",
			steps: []step{
				{at: 0, identity: "a", ip: "ip1", captcha: "k1", want: ok},
				{at: s, identity: "b", ip: "ip2", captcha: "k1", want: capInvalid},
				{at: s, identity: "b", ip: "ip2", captcha: "k2", want: ok},
			},
		},
		{
			name:   "a captcha token serves its uses, refused sends spend none",
			limits: func(l *verification.Limits) { l.CaptchaTokenUses = 3 },
			users:  []string{"alice"},
			steps: []step{
				{at: 0, identity: "a", ip: "ip1", captcha: "k1", want: ok},
				{at: s, identity: "a", ip: "ip1", captcha: "k1", want: rate(59)},                        // cooldown: no use spent
				{at: s, identity: "alice", ip: "ip1", require: noUser, captcha: "k1", want: userExists}, // nor by the user check
				{at: 2 * s, identity: "b", ip: "ip1", captcha: "k1", want: ok},
				{at: 3 * s, identity: "c", ip: "ip1", captcha: "k1", want: ok},
				{at: 4 * s, identity: "d", ip: "ip1", captcha: "k1", want: capInvalid}, // three uses spent
				{at: 4 * s, identity: "d", ip: "ip1", captcha: "k2", want: ok},
			},
		},
		{
			name: "a refused send leaves the captcha token usable",
			steps: []step{
				{at: 0, identity: "a", ip: "ip1", want: ok},
				{at: 10 * s, identity: "a", ip: "ip1", captcha: "k1", want: rate(50)},
				{at: 11 * s, identity: "b", ip: "ip1", captcha: "k1", want: ok},
				{at: 12 * s, identity: "c", ip: "ip1", captcha: "k1", want: capInvalid},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := Limits()
			if tc.limits != nil {
				tc.limits(&l)
			}
			st := newStore(t, l, verification.Pumping{}, tc.users)
			var b sends
			for i, sp := range tc.steps {
				r := b.new(sp.identity, sp.ip, at(sp.at))
				r.Require = sp.require
				r.CaptchaID = sp.captcha
				_, err := st.Codes.Reserve(t.Context(), r)
				if got := Outcome(err); got != sp.want {
					t.Fatalf("step %d (%v %s from %s, captcha %q): got %s, want %s",
						i, sp.at, sp.identity, sp.ip, sp.captcha, got, sp.want)
				}
			}
		})
	}
}

func runRelease(t *testing.T, newStore NewFunc) {
	t.Run("gives back the cooldown and the code, not the ip budget", func(t *testing.T) {
		t.Parallel()
		l := Limits()
		l.IPCap = 2
		st := newStore(t, l, verification.Pumping{}, nil)
		ctx := t.Context()
		var b sends
		r1 := b.new("a", "ip1", at(0))
		mustReserve(t, st, r1)
		if err := st.Codes.Release(ctx, r1); err != nil {
			t.Fatalf("release: got %v, want nil", err)
		}
		if got := Outcome(consume(t, st, attempt(r1, right(r1), at(time.Second)))); got != expired {
			t.Errorf("released code: got %s, want %s", got, expired)
		}
		r2 := b.new("a", "ip1", at(time.Second))
		if got := Outcome(reserve(ctx, st.Codes, r2)); got != ok {
			t.Fatalf("reserve after release: got %s, want ok", got)
		}
		r3 := b.new("b", "ip1", at(2*time.Second))
		if got, want := Outcome(reserve(ctx, st.Codes, r3)), rate(3598); got != want {
			t.Errorf("third send from the IP: got %s, want %s (the released send still counts)", got, want)
		}
	})
	t.Run("gives back the cap slot", func(t *testing.T) {
		t.Parallel()
		l := Limits()
		l.TargetCap = 2
		st := newStore(t, l, verification.Pumping{}, nil)
		var b sends
		mustReserve(t, st, b.new("a", "ip1", at(0)))
		r2 := b.new("a", "ip2", at(time.Minute))
		mustReserve(t, st, r2)
		if got, want := Outcome(reserve(t.Context(), st.Codes, b.new("a", "ip3", at(2*time.Minute)))), rate(24*3600-120); got != want {
			t.Fatalf("third send: got %s, want %s", got, want)
		}
		if err := st.Codes.Release(t.Context(), r2); err != nil {
			t.Fatalf("release: %v", err)
		}
		if got := Outcome(reserve(t.Context(), st.Codes, b.new("a", "ip3", at(2*time.Minute)))); got != ok {
			t.Errorf("send after release: got %s, want ok", got)
		}
	})
	t.Run("after a newer send does nothing", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		r1 := b.new("a", "ip1", at(0))
		mustReserve(t, st, r1)
		r2 := b.new("a", "ip1", at(time.Minute))
		mustReserve(t, st, r2)
		if err := st.Codes.Release(t.Context(), r1); err != nil {
			t.Fatalf("release: got %v, want nil", err)
		}
		if got, want := Outcome(reserve(t.Context(), st.Codes, b.new("a", "ip1", at(61*time.Second)))), rate(59); got != want {
			t.Errorf("send after the stale release: got %s, want %s (r2's cooldown stays)", got, want)
		}
		if got := Outcome(consume(t, st, attempt(r2, right(r2), at(62*time.Second)))); got != ok {
			t.Errorf("newer code after the stale release: got %s, want ok", got)
		}
	})
	t.Run("of an unknown reservation does nothing", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		if err := st.Codes.Release(t.Context(), b.new("a", "ip1", at(0))); err != nil {
			t.Errorf("release: got %v, want nil", err)
		}
	})
}

func runConsume(t *testing.T, newStore NewFunc) {
	t.Run("right code once", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, []string{"+8613800138000"})
		var b sends
		r := b.new("+8613800138000", "ip1", at(0))
		r.Channel, r.Target, r.Require = verification.SMS, verification.TargetUser, verification.RequireUser
		mustReserve(t, st, r)
		rec, err := st.Codes.Consume(t.Context(), attempt(r, right(r), at(time.Minute)))
		if err != nil {
			t.Fatalf("consume: got %v, want a record", err)
		}
		want := verification.Record{Identity: r.Identity, Channel: verification.SMS, Target: verification.TargetUser}
		if rec != want {
			t.Errorf("record: got %+v, want %+v", rec, want)
		}
		if got := Outcome(consume(t, st, attempt(r, right(r), at(time.Minute)))); got != expired {
			t.Errorf("second use: got %s, want %s", got, expired)
		}
	})
	t.Run("wrong codes count down, the fifth kills the code", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		r := b.new("a", "ip1", at(0))
		mustReserve(t, st, r)
		for i, want := range []string{wrong(4), wrong(3), wrong(2), wrong(1), tooMany, expired} {
			if got := Outcome(consume(t, st, attempt(r, "wrong", at(time.Second)))); got != want {
				t.Errorf("wrong code %d: got %s, want %s", i+1, got, want)
			}
		}
		if got := Outcome(consume(t, st, attempt(r, right(r), at(time.Second)))); got != expired {
			t.Errorf("right code after too many: got %s, want %s", got, expired)
		}
	})
	t.Run("a wrong code then the right one", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		r := b.new("a", "ip1", at(0))
		mustReserve(t, st, r)
		if got := Outcome(consume(t, st, attempt(r, "wrong", at(time.Second)))); got != wrong(4) {
			t.Errorf("wrong code: got %s, want %s", got, wrong(4))
		}
		if got := Outcome(consume(t, st, attempt(r, right(r), at(time.Second)))); got != ok {
			t.Errorf("right code: got %s, want ok", got)
		}
		if got := Outcome(consume(t, st, attempt(r, "wrong", at(time.Second)))); got != expired {
			t.Errorf("wrong code after use: got %s, want %s", got, expired)
		}
	})
	for _, tc := range []struct {
		name string
		at   time.Duration // after ExpiresAt
		hash string        // "" for the right code
		want string
	}{
		{"just before expiry", -time.Millisecond, "", ok},
		{"at expiry", 0, "", expired},
		{"just after expiry", time.Millisecond, "", expired},
		{"long after expiry", 24 * time.Hour, "", expired},
		{"wrong code after expiry", time.Millisecond, "wrong", expired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t, Limits(), verification.Pumping{}, nil)
			var b sends
			r := b.new("a", "ip1", at(0))
			mustReserve(t, st, r)
			hash := tc.hash
			if hash == "" {
				hash = right(r)
			}
			if got := Outcome(consume(t, st, attempt(r, hash, r.ExpiresAt.Add(tc.at)))); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	t.Run("superseded by a newer send", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		r1 := b.new("a", "ip1", at(0))
		mustReserve(t, st, r1)
		r2 := b.new("a", "ip1", at(time.Minute))
		mustReserve(t, st, r2)
		if got := Outcome(consume(t, st, attempt(r1, right(r1), at(time.Minute)))); got != expired {
			t.Errorf("old code: got %s, want %s", got, expired)
		}
		if got := Outcome(consume(t, st, attempt(r1, "wrong", at(time.Minute)))); got != expired {
			t.Errorf("wrong old code: got %s, want %s", got, expired)
		}
		if got := Outcome(consume(t, st, attempt(r2, right(r2), at(time.Minute)))); got != ok {
			t.Errorf("new code: got %s, want ok", got)
		}
	})
	t.Run("a new send restores the attempts", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		r1 := b.new("a", "ip1", at(0))
		mustReserve(t, st, r1)
		for range 5 {
			consume(t, st, attempt(r1, "wrong", at(time.Second)))
		}
		r2 := b.new("a", "ip1", at(time.Minute))
		mustReserve(t, st, r2)
		if got := Outcome(consume(t, st, attempt(r2, "wrong", at(time.Minute)))); got != wrong(4) {
			t.Errorf("wrong code of the new send: got %s, want %s", got, wrong(4))
		}
		if got := Outcome(consume(t, st, attempt(r2, right(r2), at(time.Minute)))); got != ok {
			t.Errorf("right code of the new send: got %s, want ok", got)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		r := b.new("a", "ip1", at(0))
		if got := Outcome(consume(t, st, attempt(r, right(r), at(0)))); got != expired {
			t.Errorf("unknown handle: got %s, want %s", got, expired)
		}
		mustReserve(t, st, r)
		other := r
		other.Nonce = "forged"
		if got := Outcome(consume(t, st, attempt(other, right(r), at(0)))); got != expired {
			t.Errorf("other nonce, same handle: got %s, want %s", got, expired)
		}
		if got := Outcome(consume(t, st, attempt(other, "wrong", at(0)))); got != expired {
			t.Errorf("other nonce, wrong code: got %s, want %s", got, expired)
		}
		if got := Outcome(consume(t, st, attempt(r, right(r), at(0)))); got != ok {
			t.Errorf("the real code after the forgeries: got %s, want ok", got)
		}
	})
}

func runChallenge(t *testing.T, newStore NewFunc) {
	exp := T0.Add(5 * time.Minute)
	solve := func(id, hash string, now time.Time) captcha.Solve {
		return captcha.Solve{ID: id, AnswerHash: hash, Now: now, MaxAttempts: 3}
	}
	w, u, e := captcha.ErrWrong.Error(), captcha.ErrUsed.Error(), captcha.ErrExpired.Error()
	for _, tc := range []struct {
		name   string
		solves []captcha.Solve
		want   []string
	}{
		{"right once", []captcha.Solve{solve("c", "ans", T0), solve("c", "ans", T0), solve("c", "bad", T0)}, []string{ok, u, u}},
		{"wrong three times kills it", []captcha.Solve{
			solve("c", "bad", T0), solve("c", "bad", T0), solve("c", "bad", T0), solve("c", "ans", T0), solve("c", "bad", T0),
		}, []string{w, w, w, e, e}},
		{"wrong then right", []captcha.Solve{solve("c", "bad", T0), solve("c", "ans", T0)}, []string{w, ok}},
		{"just before expiry", []captcha.Solve{solve("c", "ans", exp.Add(-time.Millisecond))}, []string{ok}},
		{"at expiry", []captcha.Solve{solve("c", "ans", exp)}, []string{e}},
		{"wrong after expiry", []captcha.Solve{solve("c", "bad", exp.Add(time.Hour)), solve("c", "ans", exp.Add(-time.Second))}, []string{e, ok}},
		{"unknown", []captcha.Solve{solve("nope", "ans", T0)}, []string{e}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t, Limits(), verification.Pumping{}, nil)
			if err := st.Captcha.PutChallenge(t.Context(), captcha.Challenge{ID: "c", AnswerHash: "ans", ExpiresAt: exp, IP: "cip1", Now: T0}); err != nil {
				t.Fatalf("put: %v", err)
			}
			for i, sv := range tc.solves {
				if got := Outcome(st.Captcha.SolveChallenge(t.Context(), sv)); got != tc.want[i] {
					t.Errorf("solve %d (%q at %v): got %s, want %s", i+1, sv.AnswerHash, sv.Now.Sub(T0), got, tc.want[i])
				}
			}
		})
	}
}

// runUsers: Reserve answers whether the user exists, looked up for ANY and
// the reservation's own check for USER and NOT_USER.
func runUsers(t *testing.T, newStore NewFunc) {
	st := newStore(t, Limits(), verification.Pumping{}, []string{"alice@example.com", "+8613800138000", "dave@example.com"})
	var b sends
	for i, tc := range []struct {
		identity string
		require  verification.Requirement
		want     bool
	}{
		{"alice@example.com", verification.RequireNothing, true},
		{"+8613800138000", verification.RequireNothing, true},
		{"bob@example.com", verification.RequireNothing, false},
		{"ALICE@example.com", verification.RequireNothing, false}, // identities are normalised before they get here
		{"dave@example.com", verification.RequireUser, true},
		{"erin@example.com", verification.RequireNoUser, false},
	} {
		r := b.new(tc.identity, fmt.Sprintf("ip%d", i), at(0))
		r.Require = tc.require
		got, err := st.Codes.Reserve(t.Context(), r)
		if err != nil || got != tc.want {
			t.Errorf("Reserve(%q, require %d): got is_user %v, %v, want %v, nil", tc.identity, tc.require, got, err, tc.want)
		}
	}
}

// runConcurrent races real goroutines at the store; run it with -race.
func runConcurrent(t *testing.T, newStore NewFunc) {
	t.Run("one target", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		got := race(20, func(i int) string {
			return Outcome(reserve(t.Context(), st.Codes, b.new("a", fmt.Sprintf("ip%d", i), at(0))))
		})
		checkCounts(t, got, map[string]int{ok: 1, rate(60): 19})
	})
	t.Run("one ip", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		got := race(20, func(i int) string {
			return Outcome(reserve(t.Context(), st.Codes, b.new(fmt.Sprintf("t%d", i), "ip1", at(0))))
		})
		checkCounts(t, got, map[string]int{ok: 10, rate(3600): 10})
	})
	t.Run("one captcha token", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		got := race(5, func(i int) string {
			r := b.new(fmt.Sprintf("t%d", i), fmt.Sprintf("ip%d", i), at(0))
			r.CaptchaID = "k1"
			return Outcome(reserve(t.Context(), st.Codes, r))
		})
		checkCounts(t, got, map[string]int{ok: 1, capInvalid: 4})
	})
	t.Run("one captcha token of three uses", func(t *testing.T) {
		t.Parallel()
		l := Limits()
		l.CaptchaTokenUses = 3
		st := newStore(t, l, verification.Pumping{}, nil)
		var b sends
		got := race(10, func(i int) string {
			r := b.new(fmt.Sprintf("t%d", i), "ip1", at(0))
			r.CaptchaID = "k1"
			return Outcome(reserve(t.Context(), st.Codes, r))
		})
		checkCounts(t, got, map[string]int{ok: 3, capInvalid: 7})
	})
	t.Run("user probes from one ip", func(t *testing.T) {
		// Probes refused by the user check spend the IP's budget like
		// accepted sends, and pass the captcha gate like them: of ten at
		// once, CaptchaIPGate get an answer, the rest captcha_required.
		t.Parallel()
		l := Limits()
		l.CaptchaIPGate = 3
		st := newStore(t, l, verification.Pumping{}, nil)
		var b sends
		got := race(10, func(i int) string {
			r := b.new(fmt.Sprintf("nobody%d", i), "ip1", at(0))
			r.Require = verification.RequireUser
			return Outcome(reserve(t.Context(), st.Codes, r))
		})
		checkCounts(t, got, map[string]int{notFound: 3, capRequired: 7})
	})
	t.Run("user probes and sends from one ip", func(t *testing.T) {
		t.Parallel()
		l := Limits()
		l.CaptchaIPGate = 3
		st := newStore(t, l, verification.Pumping{}, []string{"alice"})
		var b sends
		got := race(10, func(i int) string {
			r := b.new(fmt.Sprintf("t%d", i), "ip1", at(0))
			if i%2 == 0 {
				r.Identity, r.Handle = "alice", fmt.Sprintf("handle:alice%d", i)
				r.Require = verification.RequireNoUser
			}
			return Outcome(reserve(t.Context(), st.Codes, r))
		})
		n := map[string]int{}
		for _, o := range got {
			n[o]++
		}
		if n[ok]+n[userExists] != 3 || n[capRequired] != 7 {
			t.Errorf("got %v, want 3 answers (ok or user_already_exists) and 7 captcha_required", got)
		}
	})
	t.Run("right code", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		r := b.new("a", "ip1", at(0))
		mustReserve(t, st, r)
		got := race(10, func(int) string {
			_, err := st.Codes.Consume(t.Context(), attempt(r, right(r), at(time.Second)))
			return Outcome(err)
		})
		checkCounts(t, got, map[string]int{ok: 1, expired: 9})
	})
	t.Run("wrong codes", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		r := b.new("a", "ip1", at(0))
		mustReserve(t, st, r)
		got := race(10, func(int) string {
			_, err := st.Codes.Consume(t.Context(), attempt(r, "wrong", at(time.Second)))
			return Outcome(err)
		})
		// Each attempt is counted once: the remaining counts are 4, 3, 2, 1,
		// then the one that used the last; the rest find the code dead.
		checkCounts(t, got, map[string]int{wrong(4): 1, wrong(3): 1, wrong(2): 1, wrong(1): 1, tooMany: 1, expired: 5})
	})
	t.Run("right captcha answers", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		putChallenge(t, st)
		got := race(10, func(int) string {
			return Outcome(st.Captcha.SolveChallenge(t.Context(), captcha.Solve{ID: "c", AnswerHash: "ans", Now: T0, MaxAttempts: 3}))
		})
		// One solves it. Every other answer is refused: as used, or, when
		// the count found the attempts spent before the solve was written,
		// as expired (the DynamoDB store counts, then solves, in two writes).
		n := map[string]int{}
		for _, o := range got {
			n[o]++
		}
		if n[ok] != 1 || n[captcha.ErrUsed.Error()]+n[captcha.ErrExpired.Error()] != 9 {
			t.Errorf("got %v, want one ok and nine used or expired", got)
		}
	})
	t.Run("wrong captcha answers", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		putChallenge(t, st)
		got := race(10, func(int) string {
			return Outcome(st.Captcha.SolveChallenge(t.Context(), captcha.Solve{ID: "c", AnswerHash: "bad", Now: T0, MaxAttempts: 3}))
		})
		checkCounts(t, got, map[string]int{captcha.ErrWrong.Error(): 3, captcha.ErrExpired.Error(): 7})
	})
}

func putChallenge(t *testing.T, st Stores) {
	t.Helper()
	if err := st.Captcha.PutChallenge(t.Context(), captcha.Challenge{ID: "c", AnswerHash: "ans", ExpiresAt: T0.Add(time.Minute), IP: "cip1", Now: T0}); err != nil {
		t.Fatalf("put challenge: %v", err)
	}
}

// race runs f(0..n-1) in n goroutines released together and returns the
// results in order.
func race(n int, f func(i int) string) []string {
	out := make([]string, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i] = f(i)
		})
	}
	close(start)
	wg.Wait()
	return out
}

func checkCounts(t *testing.T, outcomes []string, want map[string]int) {
	t.Helper()
	got := map[string]int{}
	for _, o := range outcomes {
		got[o]++
	}
	keys := make([]string, 0, len(got)+len(want))
	for k := range got {
		keys = append(keys, k)
	}
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range slices.Compact(keys) {
		if got[k] != want[k] {
			t.Errorf("outcome %s: got %d times, want %d (all: %v)", k, got[k], want[k], outcomes)
		}
	}
}

// reserve is codes.Reserve's error, for the cases about refusals.
func reserve(ctx context.Context, codes verification.Store, r verification.Reservation) error {
	_, err := codes.Reserve(ctx, r)
	return err
}

func mustReserve(t *testing.T, st Stores, r verification.Reservation) {
	t.Helper()
	if _, err := st.Codes.Reserve(t.Context(), r); err != nil {
		t.Fatalf("reserve %s at %v: %v", r.Identity, r.Now.Sub(T0), err)
	}
}

func consume(t *testing.T, st Stores, a verification.Attempt) error {
	t.Helper()
	_, err := st.Codes.Consume(t.Context(), a)
	return err
}

// runCountFirst: a guess is counted, durably and while the code (or captcha)
// is alive, before it is compared, so a burst never has more than
// MaxAttempts guesses compared. Each trial holds 39 wrong guesses after
// their first write (AfterWrite), then sends the right code: by then the
// wrong guesses have used every attempt, so the right code must be refused.
// A store that compares in its first write and counts in a second accepts
// it. Repeated, on fresh codes.
func runCountFirst(t *testing.T, newStore NewFunc) {
	t.Run("verify", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		for trial := range 3 {
			r := b.new(fmt.Sprintf("a%d", trial), "ip1", at(0))
			mustReserve(t, st, r)
			release := make(chan struct{})
			got := make([]string, 39)
			var dones []<-chan struct{}
			for i := range got {
				dones = append(dones, held(t.Context(), release, func(ctx context.Context) {
					_, err := st.Codes.Consume(ctx, attempt(r, fmt.Sprintf("wrong%d", i), at(time.Second)))
					got[i] = Outcome(err)
				}))
			}
			last := Outcome(consume(t, st, attempt(r, right(r), at(time.Second))))
			close(release)
			for _, d := range dones {
				<-d
			}
			if last != expired {
				t.Errorf("trial %d: the right code after 39 wrong ones: got %s, want %s", trial, last, expired)
			}
			checkCounts(t, got, map[string]int{wrong(4): 1, wrong(3): 1, wrong(2): 1, wrong(1): 1, tooMany: 1, expired: 34})
		}
	})
	t.Run("captcha", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		for trial := range 3 {
			id := fmt.Sprintf("c%d", trial)
			if err := st.Captcha.PutChallenge(t.Context(), captcha.Challenge{ID: id, AnswerHash: "ans", ExpiresAt: T0.Add(time.Minute), IP: "cip1", Now: T0}); err != nil {
				t.Fatalf("put challenge: %v", err)
			}
			release := make(chan struct{})
			got := make([]string, 9)
			var dones []<-chan struct{}
			for i := range got {
				dones = append(dones, held(t.Context(), release, func(ctx context.Context) {
					got[i] = Outcome(st.Captcha.SolveChallenge(ctx, captcha.Solve{ID: id, AnswerHash: fmt.Sprintf("bad%d", i), Now: T0, MaxAttempts: 3}))
				}))
			}
			last := Outcome(st.Captcha.SolveChallenge(t.Context(), captcha.Solve{ID: id, AnswerHash: "ans", Now: T0, MaxAttempts: 3}))
			close(release)
			for _, d := range dones {
				<-d
			}
			if want := captcha.ErrExpired.Error(); last != want {
				t.Errorf("trial %d: the right answer after 9 wrong ones: got %s, want %s", trial, last, want)
			}
			checkCounts(t, got, map[string]int{captcha.ErrWrong.Error(): 3, captcha.ErrExpired.Error(): 6})
		}
	})
	t.Run("burst", func(t *testing.T) {
		// 40 guesses at once, the right one among them: however they
		// interleave, at most MaxAttempts are answered from a comparison
		// (each attempts-remaining answer at most once), the rest find the
		// code dead.
		t.Parallel()
		st := newStore(t, Limits(), verification.Pumping{}, nil)
		var b sends
		for trial := range 3 {
			r := b.new(fmt.Sprintf("a%d", trial), "ip1", at(0))
			mustReserve(t, st, r)
			got := race(40, func(i int) string {
				hash := fmt.Sprintf("wrong%d", i)
				if i == 39 {
					hash = right(r)
				}
				_, err := st.Codes.Consume(t.Context(), attempt(r, hash, at(time.Second)))
				return Outcome(err)
			})
			n := map[string]int{}
			for _, o := range got {
				n[o]++
			}
			compared := 0
			for o, k := range n {
				switch {
				case o == expired:
				case o == ok || o == tooMany || strings.HasPrefix(o, "invalid_verification_code/"):
					compared += k
					if k > 1 {
						t.Errorf("trial %d: %s answered %d times, want at most once", trial, o, k)
					}
				default:
					t.Errorf("trial %d: unexpected outcome %s", trial, o)
				}
			}
			if compared > 5 {
				t.Errorf("trial %d: %d guesses compared, want at most 5 (%v)", trial, compared, got)
			}
		}
	})
}

// runBudgets: the rolling per-IP budgets of the verify and captcha routes.
func runBudgets(t *testing.T, newStore NewFunc) {
	s := time.Second
	h := time.Hour
	t.Run("verify", func(t *testing.T) {
		t.Parallel()
		l := Limits()
		l.VerifyIPCap = 3
		st := newStore(t, l, verification.Pumping{}, nil)
		var b sends
		ra, rb, rc := b.new("a", "ip1", at(0)), b.new("b", "ip1", at(0)), b.new("c", "ip2", at(h))
		mustReserve(t, st, ra)
		mustReserve(t, st, rb)
		mustReserve(t, st, rc) // for the end of the hour, when ra and rb are dead
		from := func(r verification.Reservation, hash, ip string, d time.Duration) string {
			a := attempt(r, hash, at(d))
			a.IP = ip
			return Outcome(consume(t, st, a))
		}
		for i, c := range []struct {
			got, want string
		}{
			{from(ra, "wrong", "v1", s), wrong(4)},
			{from(rb, "wrong", "v1", 2*s), wrong(4)},
			{from(ra, "wrong", "v1", 3*s), wrong(3)},
			// The budget of v1 is spent, across codes: nothing is counted.
			{from(rb, "wrong", "v1", 4*s), rate(3600 - 3)},
			{from(rb, right(rb), "v1", 4*s), rate(3600 - 3)},
			{from(rb, "wrong", "v2", 5*s), wrong(3)}, // another IP key has its own
			// A dead code is refused as such, before the spent budget of v1,
			// and spends nothing (the rolling verify below would see it).
			{from(rb, right(rb), "v1", r(ra.ExpiresAt.Add(s))), expired},
			{from(rc, right(rc), "v1", s+h-s/2), rate(1)},
			{from(rc, right(rc), "v1", s+h), ok}, // rolling: the 00:00:01 verify left
		} {
			if c.got != c.want {
				t.Errorf("verify %d: got %s, want %s", i, c.got, c.want)
			}
		}
	})
	t.Run("captcha images", func(t *testing.T) {
		t.Parallel()
		l := Limits()
		l.CaptchaIPCap = 2
		st := newStore(t, l, verification.Pumping{}, nil)
		seq := 0
		put := func(ip string, d time.Duration) string {
			seq++
			return Outcome(st.Captcha.PutChallenge(t.Context(), captcha.Challenge{
				ID: fmt.Sprintf("c%d", seq), AnswerHash: "ans", ExpiresAt: at(d + 5*time.Minute), IP: ip, Now: at(d),
			}))
		}
		for i, c := range []struct {
			got, want string
		}{
			{put("ip1", 0), ok},
			{put("ip1", 10*s), ok},
			{put("ip1", 20*s), rate(3580)},
			{put("ip2", 20*s), ok},
			{put("ip1", h), ok},
			{put("ip1", h+5*s), rate(5)},
		} {
			if c.got != c.want {
				t.Errorf("image %d: got %s, want %s", i, c.got, c.want)
			}
		}
		// A refused image stored nothing.
		if got := Outcome(st.Captcha.SolveChallenge(t.Context(), captcha.Solve{ID: "c3", AnswerHash: "ans", Now: at(20 * s), MaxAttempts: 3})); got != captcha.ErrExpired.Error() {
			t.Errorf("refused image: got %s, want %s", got, captcha.ErrExpired)
		}
	})
}

// r is the duration of t since T0.
func r(t time.Time) time.Duration { return t.Sub(T0) }
