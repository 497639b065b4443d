package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/verification"
)

// IdempotencyNewFunc returns a fresh, empty store enforcing Limits(), as the
// two views the idempotency cases use.
type IdempotencyNewFunc func(t *testing.T) (verification.Store, verification.IdempotencyStore)

// RunIdempotency runs the contract of Idempotency-Key claims: the claim is
// part of the reservation, a held key cancels the whole reservation and says
// what holds it, answers are recorded on the send's own claim or on a free
// key, and keys come free when their lease or keep time ends or their send
// gives them back.
func RunIdempotency(t *testing.T, newStore IdempotencyNewFunc) {
	t.Run("Lifecycle", func(t *testing.T) { t.Parallel(); runIdempotencyLifecycle(t, newStore) })
	t.Run("Refused", func(t *testing.T) { t.Parallel(); runIdempotencyRefused(t, newStore) })
	t.Run("Lease", func(t *testing.T) { t.Parallel(); runIdempotencyLease(t, newStore) })
	t.Run("Concurrent", func(t *testing.T) { t.Parallel(); runIdempotencyConcurrent(t, newStore) })
}

// keyed is r with a claim of key id for a body of fingerprint fp.
func keyed(r verification.Reservation, id, fp string) verification.Reservation {
	r.Idempotency = &verification.IdempotentSend{
		ID: id, Fingerprint: fp, Owner: r.Nonce, Now: r.Now,
		LeaseUntil: r.Now.Add(verification.IdempotencyLease),
		KeepUntil:  r.Now.Add(verification.IdempotencyKeep),
	}
	return r
}

// keyState is the outcome of a held key: "held:<fp>:running" or
// "held:<fp>:<status>:<body>:<retry>"; else Outcome.
func keyState(err error) string {
	var h *verification.IdempotencyHit
	if !errors.As(err, &h) {
		return Outcome(err)
	}
	if h.Answer == nil {
		return "held:" + h.Fingerprint + ":running"
	}
	return fmt.Sprintf("held:%s:%d:%s:%d", h.Fingerprint, h.Answer.Status, h.Answer.Body, h.Answer.RetryAfter)
}

func remember(t *testing.T, ks verification.IdempotencyStore, r verification.Reservation, claimed bool, a verification.Answer) {
	t.Helper()
	if err := ks.RememberAnswer(context.Background(), verification.IdempotencyRecord{IdempotentSend: *r.Idempotency, Claimed: claimed, Answer: a}); err != nil {
		t.Fatalf("RememberAnswer: %v", err)
	}
}

func check(t *testing.T, step, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %s, want %s", step, got, want)
	}
}

func runIdempotencyLifecycle(t *testing.T, newStore IdempotencyNewFunc) {
	codes, ks := newStore(t)
	ctx := context.Background()
	var s sends
	answer := verification.Answer{Status: 200, Body: []byte(`{"verification_id":"v1","expires_in":600,"is_user":false}`)}

	first := keyed(s.new("a@example.com", "ip1", at(0)), "k1", "fpA")
	check(t, "first use", Outcome(reserve(ctx, codes, first)), ok)

	// While it runs, the same key (from another target, so no other rule
	// could refuse) is held, and the held reservation wrote nothing: its
	// target takes a send at once.
	second := keyed(s.new("b@example.com", "ip2", at(time.Second)), "k1", "fpA")
	check(t, "while running", keyState(reserve(ctx, codes, second)), "held:fpA:running")
	check(t, "held reservation wrote nothing", Outcome(reserve(ctx, codes, s.new("b@example.com", "ip2", at(2*time.Second)))), ok)
	// A held key answers before any refusal: the first send's own target
	// and IP, in its cooldown, get the held key, not the cooldown.
	check(t, "a in cooldown", Outcome(reserve(ctx, codes, s.new("a@example.com", "ip1", at(3*time.Second)))), rate(57))
	check(t, "held beats the cooldown", keyState(reserve(ctx, codes, keyed(s.new("a@example.com", "ip1", at(3*time.Second)), "k1", "fpA"))), "held:fpA:running")

	remember(t, ks, first, true, answer)
	again := keyed(s.new("c@example.com", "ip3", at(time.Minute)), "k1", "fpA")
	check(t, "after the answer", keyState(reserve(ctx, codes, again)), "held:fpA:200:"+string(answer.Body)+":0")
	// Another body with the key: the store says whose body holds it.
	other := keyed(s.new("c@example.com", "ip3", at(time.Minute)), "k1", "fpB")
	check(t, "another body", keyState(reserve(ctx, codes, other)), "held:fpA:200:"+string(answer.Body)+":0")
	// Another key is free.
	check(t, "another key", Outcome(reserve(ctx, codes, keyed(s.new("d@example.com", "ip4", at(time.Minute)), "k2", "fpA"))), ok)

	// Kept 24 hours from the first request, not from the answer.
	last := keyed(s.new("e@example.com", "ip5", at(24*time.Hour-time.Second)), "k1", "fpA")
	check(t, "just before 24 h", keyState(reserve(ctx, codes, last)), "held:fpA:200:"+string(answer.Body)+":0")
	after := keyed(s.new("e@example.com", "ip5", at(24*time.Hour)), "k1", "fpB")
	check(t, "after 24 h", Outcome(reserve(ctx, codes, after)), ok)
}

func runIdempotencyRefused(t *testing.T, newStore IdempotencyNewFunc) {
	codes, ks := newStore(t)
	ctx := context.Background()
	var s sends
	check(t, "send", Outcome(reserve(ctx, codes, s.new("a@example.com", "ip1", at(0)))), ok)

	// A refused reservation claims nothing; its answer is recorded on the
	// free key afterwards.
	refused := keyed(s.new("a@example.com", "ip1", at(10*time.Second)), "k1", "fpA")
	check(t, "in cooldown", keyState(reserve(ctx, codes, refused)), rate(50))
	answer := verification.Answer{Status: 429, Body: []byte(`{"error":"rate_limit_exceeded"}`), RetryAfter: 50}
	remember(t, ks, refused, false, answer)
	// A held key answers before any refusal: in the cooldown (40 s left
	// now) the key still replays its own answer.
	inCooldown := keyed(s.new("a@example.com", "ip1", at(20*time.Second)), "k1", "fpA")
	check(t, "retry in cooldown", keyState(reserve(ctx, codes, inCooldown)), `held:fpA:429:{"error":"rate_limit_exceeded"}:50`)
	// The key now replays the refusal, even after the cooldown ended.
	retry := keyed(s.new("a@example.com", "ip1", at(2*time.Minute)), "k1", "fpA")
	check(t, "retry", keyState(reserve(ctx, codes, retry)), `held:fpA:429:{"error":"rate_limit_exceeded"}:50`)

	// A refusal's answer never overwrites a key another request holds.
	claim := keyed(s.new("b@example.com", "ip2", at(3*time.Minute)), "k2", "fpB")
	check(t, "claim k2", Outcome(reserve(ctx, codes, claim)), ok)
	late := keyed(s.new("a@example.com", "ip1", at(3*time.Minute)), "k2", "fpC")
	remember(t, ks, late, false, answer)
	check(t, "k2 still running", keyState(reserve(ctx, codes, keyed(s.new("c@example.com", "ip3", at(3*time.Minute)), "k2", "fpB"))), "held:fpB:running")
}

func runIdempotencyLease(t *testing.T, newStore IdempotencyNewFunc) {
	codes, ks := newStore(t)
	ctx := context.Background()
	var s sends
	lease := verification.IdempotencyLease

	// A claim whose send died: held until its lease ends, then free.
	dead := keyed(s.new("a@example.com", "ip1", at(0)), "k1", "fpA")
	check(t, "claim", Outcome(reserve(ctx, codes, dead)), ok)
	check(t, "before the lease ends", keyState(reserve(ctx, codes, keyed(s.new("b@example.com", "ip2", at(lease-time.Second)), "k1", "fpA"))), "held:fpA:running")
	next := keyed(s.new("b@example.com", "ip2", at(lease)), "k1", "fpA")
	check(t, "after the lease", Outcome(reserve(ctx, codes, next)), ok)
	// The dead send's late answer is not recorded: next holds the key.
	remember(t, ks, dead, true, verification.Answer{Status: 200, Body: []byte("dead")})
	check(t, "late answer ignored", keyState(reserve(ctx, codes, keyed(s.new("c@example.com", "ip3", at(lease+time.Second)), "k1", "fpA"))), "held:fpA:running")

	// A failed send gives its key back; only its own claim.
	failed := keyed(s.new("d@example.com", "ip4", at(0)), "k2", "fpA")
	check(t, "claim k2", Outcome(reserve(ctx, codes, failed)), ok)
	stranger := *failed.Idempotency
	stranger.Owner = "someone-else"
	if err := ks.ReleaseKey(ctx, stranger); err != nil {
		t.Fatal(err)
	}
	check(t, "released by another", keyState(reserve(ctx, codes, keyed(s.new("e@example.com", "ip5", at(time.Second)), "k2", "fpA"))), "held:fpA:running")
	if err := ks.ReleaseKey(ctx, *failed.Idempotency); err != nil {
		t.Fatal(err)
	}
	check(t, "released", Outcome(reserve(ctx, codes, keyed(s.new("e@example.com", "ip5", at(2*time.Second)), "k2", "fpA"))), ok)
}

// runIdempotencyConcurrent: many reservations with one key at once, each
// for its own target and IP: exactly one commits, every other is held.
func runIdempotencyConcurrent(t *testing.T, newStore IdempotencyNewFunc) {
	codes, _ := newStore(t)
	var s sends
	const n = 8
	checkCounts(t, race(n, func(i int) string {
		r := keyed(s.new(fmt.Sprintf("u%d@example.com", i), fmt.Sprintf("ip%d", i), at(0)), "k1", "fpA")
		return keyState(reserve(context.Background(), codes, r))
	}), map[string]int{ok: 1, "held:fpA:running": n - 1})
}
