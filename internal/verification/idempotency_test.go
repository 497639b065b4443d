package verification_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/verification"
)

// keyedSend is a send of email from ip with an Idempotency-Key; the body is
// what the adapter would have read.
func keyedSend(email, ip, key string) verification.SendRequest {
	target := "ANY"
	return verification.SendRequest{
		Target: &target, Email: &email, IP: ip,
		IdempotencyKey: &key, Body: []byte(`{"target":"ANY","email":"` + email + `"}`),
	}
}

func idempotentFixture(t *testing.T) *fixture {
	f := newFixture(t, testLimits)
	f.deps.Idempotency = f.store
	f.rebuild()
	return f
}

func TestIdempotencyKeyShape(t *testing.T) {
	tests := []struct {
		name, key string
		ok        bool
	}{
		{"uuid", "8e03978e-40d5-43e8-bc93-6894a57f9324", true},
		{"quoted, as a structured field", `"8e03978e-40d5-43e8-bc93-6894a57f9324"`, true},
		{"one character", "x", true},
		{"255 characters", strings.Repeat("k", 255), true},
		{"every visible ASCII", "!~09AZaz\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}", true},
		{"empty", "", false},
		{"256 characters", strings.Repeat("k", 256), false},
		{"space", "a b", false},
		{"tab", "a\tb", false},
		{"DEL", "a\x7fb", false},
		{"non-ASCII", "clé", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := idempotentFixture(t)
			_, _, err := f.svc.Send(context.Background(), keyedSend("a@example.com", "192.0.2.1", tt.key))
			if got := verification.KindOf(err); tt.ok && err != nil || !tt.ok && got != verification.KindInvalidRequest {
				t.Errorf("key %q: got %v, want ok %v (else invalid_request)", tt.key, err, tt.ok)
			}
			if n := len(f.email.msgs); tt.ok != (n == 1) {
				t.Errorf("key %q: %d messages", tt.key, n)
			}
		})
	}
}

func TestIdempotentSend(t *testing.T) {
	f := idempotentFixture(t)
	ctx := context.Background()
	req := keyedSend("a@example.com", "192.0.2.1", "key-1")

	res, _, err := f.svc.Send(ctx, req)
	if err != nil || res.Replay != nil || res.Idempotency == nil {
		t.Fatalf("first send: %+v, %v; want a send holding its key", res, err)
	}
	// Before its answer is recorded the first request is still running.
	f.clock.advance(time.Second)
	_, _, err = f.svc.Send(ctx, req)
	var e *verification.Error
	if !errors.As(err, &e) || e.Kind != verification.KindIdempotencyKeyInProgress || e.RetryAfter != 1 {
		t.Fatalf("while running: got %v, want idempotency_key_in_progress with retry after 1 s", err)
	}

	first := verification.Answer{Status: 200, Body: []byte(`{"verification_id":"` + res.VerificationID + `"}`)}
	if err := f.svc.RememberAnswer(ctx, res.Idempotency, first); err != nil {
		t.Fatal(err)
	}
	// The same key and body: the first answer, nothing sent, even past the
	// cooldown (which a fresh send would meet) and the per-IP budget.
	for _, wait := range []time.Duration{time.Second, 2 * time.Minute, 23 * time.Hour} {
		f.clock.advance(wait)
		again, _, err := f.svc.Send(ctx, req)
		if err != nil || again.Replay == nil || string(again.Replay.Body) != string(first.Body) || again.Replay.Status != 200 || again.Idempotency != nil {
			t.Fatalf("replay after %v more: %+v, %v; want the first answer", wait, again, err)
		}
	}
	if n := len(f.email.msgs); n != 1 {
		t.Fatalf("%d messages sent, want 1", n)
	}

	// Another body with the key.
	other := keyedSend("b@example.com", "192.0.2.1", "key-1")
	if _, _, err := f.svc.Send(ctx, other); verification.KindOf(err) != verification.KindIdempotencyKeyReused {
		t.Fatalf("another body: got %v, want idempotency_key_reused", err)
	}
	// The key is the client's own: from another IP it is another key.
	fromElsewhere := keyedSend("b@example.com", "192.0.2.2", "key-1")
	if _, _, err := f.svc.Send(ctx, fromElsewhere); err != nil {
		t.Fatalf("same key from another IP: %v", err)
	}

	// 24 hours after the first request the key is free again: the same body
	// runs afresh.
	f.clock.advance(time.Hour)
	res, _, err = f.svc.Send(ctx, req)
	if err != nil || res.Replay != nil {
		t.Fatalf("after 24 h: %+v, %v; want a fresh send", res, err)
	}
	if n := len(f.email.msgs); n != 3 {
		t.Fatalf("%d messages sent, want 3", n)
	}
}

func TestIdempotentRefusalIsReplayed(t *testing.T) {
	f := idempotentFixture(t)
	ctx := context.Background()
	if _, _, err := f.svc.Send(ctx, keyedSend("a@example.com", "192.0.2.1", "key-1")); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(10 * time.Second)
	req := keyedSend("a@example.com", "192.0.2.1", "key-2")
	res, _, err := f.svc.Send(ctx, req)
	if verification.KindOf(err) != verification.KindRateLimitExceeded || res.Idempotency == nil {
		t.Fatalf("in cooldown: %+v, %v; want rate_limit_exceeded holding its key", res, err)
	}
	refusal := verification.Answer{Status: 429, Body: []byte(`{"error":"rate_limit_exceeded"}`), RetryAfter: 50}
	if err := f.svc.RememberAnswer(ctx, res.Idempotency, refusal); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(time.Minute) // the cooldown is over: only a replay still says 429
	again, _, err := f.svc.Send(ctx, req)
	if err != nil || again.Replay == nil || again.Replay.Status != 429 || again.Replay.RetryAfter != 50 {
		t.Fatalf("retry: %+v, %v; want the 429 again", again, err)
	}
	if n := len(f.email.msgs); n != 1 {
		t.Fatalf("%d messages sent, want 1", n)
	}
}

// A kept captcha_required is replayed too: the same key and body, now with
// a captcha token, get the 428 again; the attempt with the token needs a
// new key.
func TestIdempotentCaptchaRequiredIsReplayed(t *testing.T) {
	l := testLimits
	l.CaptchaIPGate = 1 // one send an hour from an IP, then a captcha
	f := newFixture(t, l)
	f.deps.Idempotency = f.store
	f.rebuild()
	ctx := context.Background()
	if _, _, err := f.svc.Send(ctx, keyedSend("a@example.com", "192.0.2.1", "key-1")); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(10 * time.Second)
	req := keyedSend("b@example.com", "192.0.2.1", "key-2")
	res, _, err := f.svc.Send(ctx, req)
	if verification.KindOf(err) != verification.KindCaptchaRequired || res.Idempotency == nil {
		t.Fatalf("at the gate: %+v, %v; want captcha_required holding its key", res, err)
	}
	refusal := verification.Answer{Status: 428, Body: []byte(`{"error":"captcha_required"}`)}
	if err := f.svc.RememberAnswer(ctx, res.Idempotency, refusal); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(time.Second)
	req.CaptchaToken = ptr("good") // the token passes the gate: only a replay still says 428
	again, _, err := f.svc.Send(ctx, req)
	if err != nil || again.Replay == nil || again.Replay.Status != 428 || string(again.Replay.Body) != string(refusal.Body) || again.Idempotency != nil {
		t.Fatalf("retry with a captcha token: %+v, %v; want the 428 again", again, err)
	}
	if n := len(f.email.msgs); n != 1 {
		t.Fatalf("%d messages sent, want 1", n)
	}
	// With a new key the same body and token are sent.
	fresh := keyedSend("b@example.com", "192.0.2.1", "key-3")
	fresh.CaptchaToken = ptr("good")
	if res, _, err := f.svc.Send(ctx, fresh); err != nil || res.Replay != nil {
		t.Fatalf("new key with the token: %+v, %v; want a fresh send", res, err)
	}
	if n := len(f.email.msgs); n != 2 {
		t.Fatalf("%d messages sent, want 2", n)
	}
}

// A 5xx answer is not kept: a failed send gives its key back, and a retry
// runs afresh.
func TestIdempotentFailureIsNotKept(t *testing.T) {
	f := idempotentFixture(t)
	ctx := context.Background()
	req := keyedSend("a@example.com", "192.0.2.1", "key-1")
	f.email.err = errors.New("SES said no")
	res, _, err := f.svc.Send(ctx, req)
	if verification.KindOf(err) != verification.KindSendFailed {
		t.Fatalf("got %v, want send_failed", err)
	}
	// The adapter hands every answer over; a 5xx is dropped.
	if err := f.svc.RememberAnswer(ctx, res.Idempotency, verification.Answer{Status: 502, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	f.email.err = nil
	res, _, err = f.svc.Send(ctx, req)
	if err != nil || res.Replay != nil {
		t.Fatalf("retry: %+v, %v; want a fresh send", res, err)
	}
	if n := len(f.email.msgs); n != 2 {
		t.Fatalf("%d send attempts, want 2", n)
	}

	// A 5xx of the store itself claims nothing either.
	down := idempotentFixture(t)
	down.deps.Store = downStore{down.store}
	down.rebuild()
	res, _, err = down.svc.Send(ctx, req)
	if verification.KindOf(err) != verification.KindServiceUnavailable {
		t.Fatalf("store down: %v", err)
	}
	if err := down.svc.RememberAnswer(ctx, res.Idempotency, verification.Answer{Status: 503}); err != nil {
		t.Fatal(err)
	}
	down.deps.Store = down.store
	down.rebuild()
	if res, _, err = down.svc.Send(ctx, req); err != nil || res.Replay != nil {
		t.Fatalf("after the store came back: %+v, %v; want a fresh send", res, err)
	}
}

// Input errors are answered before the key is looked at, and bind nothing
// (as Stripe does: only a request that began executing is saved).
func TestIdempotentInputErrorBindsNothing(t *testing.T) {
	f := idempotentFixture(t)
	ctx := context.Background()
	bad := keyedSend("not-an-email", "192.0.2.1", "key-1")
	if _, _, err := f.svc.Send(ctx, bad); verification.KindOf(err) != verification.KindInvalidEmail {
		t.Fatalf("got %v, want invalid_email", err)
	}
	if _, _, err := f.svc.Send(ctx, keyedSend("a@example.com", "192.0.2.1", "key-1")); err != nil {
		t.Fatalf("the corrected body with the key: %v", err)
	}
}

// A service without an idempotency store refuses a keyed send as an
// internal error, before it reserves anything: the same send without the
// key then goes out at once, with no cooldown spent.
func TestKeyedSendWithoutIdempotencyStore(t *testing.T) {
	f := newFixture(t, testLimits)
	ctx := context.Background()
	req := keyedSend("a@example.com", "192.0.2.1", "key-1")
	if _, _, err := f.svc.Send(ctx, req); verification.KindOf(err) != verification.KindInternal {
		t.Fatalf("keyed send without a store: %v, want internal_error", err)
	}
	req.IdempotencyKey = nil
	if _, _, err := f.svc.Send(ctx, req); err != nil {
		t.Fatalf("the same send without its key: %v, want it sent", err)
	}
	if n := len(f.email.msgs); n != 1 {
		t.Fatalf("%d messages sent, want 1", n)
	}
}
