package verification_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/memstore"
	"github.com/verifykit/verifykit/internal/verification"
)

// fakeSender records messages and answers with err.
type fakeSender struct {
	mu   sync.Mutex
	msgs []verification.Message
	err  error
}

func (f *fakeSender) Send(_ context.Context, m verification.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, m)
	return f.err
}

func (f *fakeSender) last(t *testing.T) verification.Message {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.msgs) == 0 {
		t.Fatal("no message sent")
	}
	return f.msgs[len(f.msgs)-1]
}

// fakeTokens records what it was asked to sign.
type fakeTokens struct{ got []verification.Verified }

func (f *fakeTokens) Issue(v verification.Verified, _ time.Time) (string, error) {
	f.got = append(f.got, v)
	return "token-for-" + v.Identity, nil
}

// fakeCaptcha accepts the token "good" and refuses everything else.
type fakeCaptcha struct{}

func (fakeCaptcha) Check(tok, _ string, now time.Time) (verification.CaptchaPass, error) {
	if tok != "good" {
		return verification.CaptchaPass{}, verification.ErrCaptchaInvalid
	}
	return verification.CaptchaPass{ID: "cap1", Expires: now.Add(5 * time.Minute)}, nil
}

// downStore is a store whose database cannot be reached.
type downStore struct{ verification.Store }

func (downStore) Reserve(context.Context, verification.Reservation) (bool, error) {
	return false, fmt.Errorf("dial tcp: connection refused: %w", verification.ErrUnavailable)
}

// lookupFails is a store whose reservations commit but whose ANY user
// lookup fails, as the DynamoDB store's GetItem beside the transaction can.
type lookupFails struct{ *memstore.Store }

func (l lookupFails) Reserve(ctx context.Context, r verification.Reservation) (bool, error) {
	if _, err := l.Store.Reserve(ctx, r); err != nil {
		return false, err
	}
	return false, fmt.Errorf("%w: %w", verification.ErrUserLookup, verification.ErrUnavailable)
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

var testLimits = verification.Limits{
	Cooldown:       60 * time.Second,
	TargetCap:      10,
	TargetWindow:   24 * time.Hour,
	IPCap:          10,
	IPWindow:       time.Hour,
	CaptchaIPGate:  0,
	CaptchaTgtGate: 0,
	MaxAttempts:    5,
	CodeTTL:        600 * time.Second,

	VerifyIPCap:      60,
	CaptchaIPCap:     30,
	CaptchaTokenUses: 1,
}

type fixture struct {
	svc    *verification.Service
	deps   verification.Deps
	opts   verification.Options
	store  *memstore.Store
	sms    *fakeSender
	email  *fakeSender
	tokens *fakeTokens
	clock  *clock
}

func newFixture(t *testing.T, limits verification.Limits, users ...string) *fixture {
	t.Helper()
	keys, err := verification.NewKeys([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	phones, err := verification.NewPhoneParser([]string{"CN"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		store:  memstore.New(memstore.Options{Limits: limits, Users: users}),
		sms:    &fakeSender{},
		email:  &fakeSender{},
		tokens: &fakeTokens{},
		clock:  &clock{time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)},
	}
	f.deps = verification.Deps{
		Store:   f.store,
		Senders: map[verification.Channel]verification.Sender{verification.SMS: f.sms, verification.Email: f.email},
		Captcha: fakeCaptcha{},
		Tokens:  f.tokens,
	}
	f.opts = verification.Options{
		Keys:     keys,
		Phones:   phones,
		Limits:   limits,
		TokenTTL: 600 * time.Second,
		Now:      f.clock.now,
	}
	f.rebuild()
	return f
}

// rebuild builds the service again from the fixture's deps and options,
// after a test changed one.
func (f *fixture) rebuild() { f.svc = verification.New(f.deps, f.opts) }

func ptr(s string) *string { return &s }

func emailSend(email, target string) verification.SendRequest {
	return verification.SendRequest{Target: ptr(target), Email: ptr(email), IP: "203.0.113.1"}
}

func (f *fixture) send(t *testing.T, req verification.SendRequest) (verification.SendResult, error) {
	t.Helper()
	res, _, err := f.svc.Send(context.Background(), req)
	return res, err
}

func (f *fixture) verify(id, code string) (verification.VerifyResult, error) {
	return f.svc.Verify(context.Background(), verification.VerifyRequest{VerificationID: &id, VerificationCode: &code})
}

func TestSendAndVerify(t *testing.T) {
	tests := []struct {
		name       string
		req        verification.SendRequest
		users      []string
		wantIsUser bool
		sender     func(f *fixture) *fakeSender
		wantTo     string
		identity   string
	}{
		{"email ANY new", emailSend("User@Example.com", "ANY"), nil, false, func(f *fixture) *fakeSender { return f.email }, "User@Example.com", "user@example.com"},
		{"email ANY existing", emailSend("user@example.com", "ANY"), []string{"user@example.com"}, true, func(f *fixture) *fakeSender { return f.email }, "user@example.com", "user@example.com"},
		{"email USER", emailSend("user@example.com", "USER"), []string{"user@example.com"}, true, func(f *fixture) *fakeSender { return f.email }, "user@example.com", "user@example.com"},
		{"email NOT_USER", emailSend("new@example.com", "NOT_USER"), nil, false, func(f *fixture) *fakeSender { return f.email }, "new@example.com", "new@example.com"},
		{"phone ANY", verification.SendRequest{Target: ptr("ANY"), PhoneNumber: ptr("+86 13800138000"), IP: "203.0.113.1"}, []string{"+8613800138000"}, true, func(f *fixture) *fakeSender { return f.sms }, "+8613800138000", "+8613800138000"},
		// The CloudBase JS SDK's sign-in and sign-up flows send no target: ANY.
		{"email, no target", verification.SendRequest{Email: ptr("new@example.com"), IP: "203.0.113.1"}, nil, false, func(f *fixture) *fakeSender { return f.email }, "new@example.com", "new@example.com"},
		{"phone, no target, existing", verification.SendRequest{PhoneNumber: ptr("+8613800138000"), IP: "203.0.113.1"}, []string{"+8613800138000"}, true, func(f *fixture) *fakeSender { return f.sms }, "+8613800138000", "+8613800138000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, testLimits, tt.users...)
			res, err := f.send(t, tt.req)
			if err != nil {
				t.Fatalf("send: %v", err)
			}
			if res.IsUser != tt.wantIsUser || res.ExpiresIn != 600 || res.VerificationID == "" {
				t.Fatalf("got %+v, want is_user %v, expires_in 600", res, tt.wantIsUser)
			}
			if strings.Contains(res.VerificationID, tt.identity) || strings.Contains(res.VerificationID, "13800138000") {
				t.Fatalf("verification_id %q carries the target", res.VerificationID)
			}
			msg := tt.sender(f).last(t)
			if msg.To != tt.wantTo || len(msg.Code) != 6 {
				t.Fatalf("got message %+v, want to %s with a 6-digit code", msg, tt.wantTo)
			}
			f.clock.advance(599 * time.Second)
			v, err := f.verify(res.VerificationID, msg.Code)
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if v.Token != "token-for-"+tt.identity || v.ExpiresIn != 600 {
				t.Fatalf("got %+v", v)
			}
			got, wantTarget := f.tokens.got[0], "ANY"
			if tt.req.Target != nil {
				wantTarget = *tt.req.Target
			}
			if got.Identity != tt.identity || got.IsUser != tt.wantIsUser || string(got.Target) != wantTarget {
				t.Fatalf("token claims %+v, want identity %s is_user %v target %s", got, tt.identity, tt.wantIsUser, wantTarget)
			}
			if _, err := f.verify(res.VerificationID, msg.Code); verification.KindOf(err) != verification.KindVerificationExpired {
				t.Fatalf("second verify: got %v, want verification_expired (single use)", err)
			}
		})
	}
}

func TestSendRefusals(t *testing.T) {
	tests := []struct {
		name  string
		users []string
		req   verification.SendRequest
		want  verification.Kind
	}{
		{"no target, neither field", nil, verification.SendRequest{}, verification.KindInvalidRequest},
		{"no target, bad email", nil, verification.SendRequest{Email: ptr("a b@c")}, verification.KindInvalidEmail},
		{"neither field", nil, verification.SendRequest{Target: ptr("ANY")}, verification.KindInvalidRequest},
		{"both fields", nil, verification.SendRequest{Target: ptr("ANY"), Email: ptr("a@b.c"), PhoneNumber: ptr("+86 13800138000")}, verification.KindInvalidRequest},
		{"bad target", nil, verification.SendRequest{Target: ptr("any"), Email: ptr("a@b.c")}, verification.KindInvalidTarget},
		{"empty target", nil, verification.SendRequest{Target: ptr(""), Email: ptr("a@b.c")}, verification.KindInvalidTarget},
		{"bad email", nil, verification.SendRequest{Target: ptr("ANY"), Email: ptr("")}, verification.KindInvalidEmail},
		{"bad phone", nil, verification.SendRequest{Target: ptr("ANY"), PhoneNumber: ptr("13800138000")}, verification.KindInvalidPhoneNumber},
		{"USER missing", nil, emailSend("missing@example.com", "USER"), verification.KindUserNotFound},
		{"NOT_USER existing", []string{"old@example.com"}, emailSend("old@example.com", "NOT_USER"), verification.KindUserAlreadyExists},
		{"forged captcha token", nil, verification.SendRequest{Target: ptr("ANY"), Email: ptr("a@b.c"), CaptchaToken: ptr("forged")}, verification.KindCaptchaInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, testLimits, tt.users...)
			_, err := f.send(t, tt.req)
			if got := verification.KindOf(err); got != tt.want {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
			if len(f.email.msgs)+len(f.sms.msgs) != 0 {
				t.Fatal("a refused send sent a message")
			}
			// Nothing stored: the same target can be sent to at once.
			if _, err := f.send(t, emailSend("a@b.c", "ANY")); err != nil {
				t.Fatalf("send after refusal: %v", err)
			}
		})
	}
}

// TestWithoutCaptchasEveryTokenIsInvalid: a service built without captchas
// refuses any captcha token, even one its fixture's captchas would pass,
// and stores and sends nothing for it; without a token the send goes on.
func TestWithoutCaptchasEveryTokenIsInvalid(t *testing.T) {
	f := newFixture(t, testLimits)
	f.deps.Captcha = nil
	f.rebuild()
	req := emailSend("a@b.c", "ANY")
	req.CaptchaToken = ptr("good")
	if _, err := f.send(t, req); verification.KindOf(err) != verification.KindCaptchaInvalid {
		t.Fatalf("got %v, want captcha_invalid", err)
	}
	if len(f.email.msgs) != 0 {
		t.Fatal("sent with a refused token")
	}
	if _, err := f.send(t, emailSend("a@b.c", "ANY")); err != nil {
		t.Fatalf("send without a token: %v", err)
	}
}

func TestChannelDisabled(t *testing.T) {
	f := newFixture(t, testLimits)
	delete(f.deps.Senders, verification.SMS)
	f.rebuild()
	_, err := f.send(t, verification.SendRequest{Target: ptr("ANY"), PhoneNumber: ptr("+86 13800138000"), CaptchaToken: ptr("forged")})
	if verification.KindOf(err) != verification.KindChannelDisabled {
		t.Fatalf("got %v, want channel_disabled (before captcha_invalid)", err)
	}
	// A bad phone number is still reported first.
	_, err = f.send(t, verification.SendRequest{Target: ptr("ANY"), PhoneNumber: ptr("123")})
	if verification.KindOf(err) != verification.KindInvalidPhoneNumber {
		t.Fatalf("got %v, want invalid_phone_number", err)
	}
}

func TestSendFailureGivesCooldownBack(t *testing.T) {
	f := newFixture(t, verification.Limits{
		Cooldown: time.Minute, TargetCap: 10, TargetWindow: 24 * time.Hour,
		IPCap: 2, IPWindow: time.Hour, MaxAttempts: 5, CodeTTL: 10 * time.Minute,
		VerifyIPCap: 60, CaptchaIPCap: 30, CaptchaTokenUses: 1,
	})
	f.email.err = errors.New("ses: MessageRejected")
	_, err := f.send(t, emailSend("a@b.c", "ANY"))
	if verification.KindOf(err) != verification.KindSendFailed {
		t.Fatalf("got %v, want send_failed", err)
	}
	code := f.email.last(t).Code
	_ = code
	f.email.err = nil
	// The cooldown was given back: an immediate retry is accepted...
	if _, err := f.send(t, emailSend("a@b.c", "ANY")); err != nil {
		t.Fatalf("retry after send_failed: %v", err)
	}
	// ...but the IP budget (2) stayed spent: a third send is refused.
	_, err = f.send(t, emailSend("other@b.c", "ANY"))
	if verification.KindOf(err) != verification.KindRateLimitExceeded {
		t.Fatalf("got %v, want rate_limit_exceeded (IP budget kept)", err)
	}
}

func TestSendFailureRemovesCode(t *testing.T) {
	f := newFixture(t, testLimits)
	f.email.err = errors.New("ses: MessageRejected")
	if _, err := f.send(t, emailSend("a@b.c", "ANY")); verification.KindOf(err) != verification.KindSendFailed {
		t.Fatalf("got %v, want send_failed", err)
	}
	// The failed send returned no id; the code it would have carried must be
	// dead in the store too: a new send's id verifies only its own code.
	failed := f.email.last(t).Code
	f.email.err = nil
	res, err := f.send(t, emailSend("a@b.c", "ANY"))
	if err != nil {
		t.Fatal(err)
	}
	good := f.email.last(t).Code
	if failed != good {
		if _, err := f.verify(res.VerificationID, failed); verification.KindOf(err) != verification.KindInvalidVerificationCode {
			t.Fatalf("old code: got %v, want invalid_verification_code", err)
		}
	}
	if _, err := f.verify(res.VerificationID, good); err != nil {
		t.Fatalf("new code: %v", err)
	}
}

func TestOutcomeUnknownKeepsCodeAndCooldown(t *testing.T) {
	f := newFixture(t, testLimits)
	f.sms.err = errors.Join(errors.New("timeout"), verification.ErrOutcomeUnknown)
	res, err := f.send(t, verification.SendRequest{Target: ptr("ANY"), PhoneNumber: ptr("+86 13800138000")})
	if err != nil || !res.OutcomeUnknown || res.VerificationID == "" {
		t.Fatalf("got %+v, %v; want 200 with outcome unknown", res, err)
	}
	_, err = f.send(t, verification.SendRequest{Target: ptr("ANY"), PhoneNumber: ptr("+86 13800138000")})
	if verification.KindOf(err) != verification.KindRateLimitExceeded {
		t.Fatalf("got %v, want rate_limit_exceeded (cooldown kept)", err)
	}
	if _, err := f.verify(res.VerificationID, f.sms.last(t).Code); err != nil {
		t.Fatalf("verify: %v (code kept)", err)
	}
}

func TestStoreUnavailableSendsNothing(t *testing.T) {
	f := newFixture(t, testLimits)
	f.deps.Store = downStore{f.store}
	f.rebuild()
	_, err := f.send(t, emailSend("a@b.c", "ANY"))
	if verification.KindOf(err) != verification.KindServiceUnavailable {
		t.Fatalf("got %v", err)
	}
	if len(f.email.msgs) != 0 {
		t.Fatal("sent although the store failed")
	}
}

func TestUserLookupFailureGivesReservationBack(t *testing.T) {
	f := newFixture(t, testLimits)
	f.deps.Store = lookupFails{f.store}
	f.rebuild()
	if _, err := f.send(t, emailSend("a@b.c", "ANY")); verification.KindOf(err) != verification.KindServiceUnavailable {
		t.Fatalf("got %v, want service_unavailable", err)
	}
	if len(f.email.msgs) != 0 {
		t.Fatal("sent although the user lookup failed")
	}
	// The reservation was released: the same send goes through at once.
	f.deps.Store = f.store
	f.rebuild()
	if _, err := f.send(t, emailSend("a@b.c", "ANY")); err != nil {
		t.Fatalf("retry after the failed lookup: %v", err)
	}
}

func TestVerifyExpiry(t *testing.T) {
	for _, tt := range []struct {
		after time.Duration
		want  verification.Kind
	}{
		{599 * time.Second, ""},
		{600 * time.Second, verification.KindVerificationExpired},
		{601 * time.Second, verification.KindVerificationExpired},
	} {
		f := newFixture(t, testLimits)
		res, err := f.send(t, emailSend("a@b.c", "ANY"))
		if err != nil {
			t.Fatal(err)
		}
		f.clock.advance(tt.after)
		_, err = f.verify(res.VerificationID, f.email.last(t).Code)
		if got := verification.KindOf(err); got != tt.want {
			t.Errorf("after %v: got %v, want %q", tt.after, err, tt.want)
		}
	}
}

func TestVerifyAttempts(t *testing.T) {
	f := newFixture(t, testLimits)
	res, err := f.send(t, emailSend("a@b.c", "ANY"))
	if err != nil {
		t.Fatal(err)
	}
	code := f.email.last(t).Code
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for want := 4; want >= 1; want-- {
		_, err := f.verify(res.VerificationID, wrong)
		var e *verification.Error
		if !errors.As(err, &e) || e.Kind != verification.KindInvalidVerificationCode || *e.AttemptsRemaining != want {
			t.Fatalf("got %v, want invalid_verification_code with %d remaining", err, want)
		}
	}
	if _, err := f.verify(res.VerificationID, "abc"); verification.KindOf(err) != verification.KindTooManyAttempts {
		t.Fatalf("5th wrong (malformed) code: got %v, want too_many_attempts", err)
	}
	if _, err := f.verify(res.VerificationID, code); verification.KindOf(err) != verification.KindVerificationExpired {
		t.Fatalf("right code after death: got %v, want verification_expired", err)
	}
}

func TestVerifySupersededAndForged(t *testing.T) {
	f := newFixture(t, testLimits)
	first, err := f.send(t, emailSend("a@b.c", "ANY"))
	if err != nil {
		t.Fatal(err)
	}
	firstCode := f.email.last(t).Code
	f.clock.advance(61 * time.Second)
	second, err := f.send(t, emailSend("a@b.c", "ANY"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.verify(first.VerificationID, firstCode); verification.KindOf(err) != verification.KindVerificationExpired {
		t.Fatalf("superseded: got %v, want verification_expired", err)
	}
	id := []byte(second.VerificationID)
	for _, i := range []int{0, 30, len(id) - 1} {
		forged := append([]byte(nil), id...)
		forged[i] ^= 1
		if _, err := f.verify(string(forged), "123456"); verification.KindOf(err) != verification.KindVerificationExpired {
			t.Fatalf("forged id (byte %d): got %v, want verification_expired", i, err)
		}
	}
	for _, bad := range []string{"", "x", strings.Repeat("A", 64), strings.Repeat("A", 200)} {
		if _, err := f.verify(bad, "123456"); verification.KindOf(err) != verification.KindVerificationExpired {
			t.Fatalf("id %q: got %v, want verification_expired", bad, err)
		}
	}
	if _, err := f.verify(second.VerificationID, f.email.last(t).Code); err != nil {
		t.Fatalf("current code: %v", err)
	}
}

func TestVerifyMissingFields(t *testing.T) {
	f := newFixture(t, testLimits)
	if _, err := f.svc.Verify(context.Background(), verification.VerifyRequest{VerificationCode: ptr("123456")}); verification.KindOf(err) != verification.KindInvalidRequest {
		t.Fatalf("got %v, want invalid_request", err)
	}
}

func TestNewCodeUniform(t *testing.T) {
	const n = 100000
	var counts [6][10]int
	for i := 0; i < n; i++ {
		c, err := verification.NewCode()
		if err != nil || len(c) != 6 {
			t.Fatalf("NewCode() = %q, %v", c, err)
		}
		for p := 0; p < 6; p++ {
			d := c[p] - '0'
			if d > 9 {
				t.Fatalf("non-digit in %q", c)
			}
			counts[p][d]++
		}
	}
	// Each digit at each position: expected 10000, sd ~95; 6 sd is a bound
	// no correct generator crosses in practice.
	for p := range counts {
		for d, c := range counts[p] {
			if c < n/10-600 || c > n/10+600 {
				t.Errorf("position %d digit %d: %d of %d", p, d, c, n)
			}
		}
	}
}

// deadlineSender records the deadline of the context it is given and fails
// the send for good.
type deadlineSender struct {
	deadline time.Time
}

func (d *deadlineSender) Send(ctx context.Context, _ verification.Message) error {
	d.deadline, _ = ctx.Deadline()
	return errors.New("ses: MessageRejected")
}

// releaseRecorder records the deadline of each Release's context.
type releaseRecorder struct {
	verification.Store
	deadlines []time.Time
}

func (r *releaseRecorder) Release(ctx context.Context, res verification.Reservation) error {
	d, _ := ctx.Deadline()
	r.deadlines = append(r.deadlines, d)
	return r.Store.Release(ctx, res)
}

// TestSendDeadlineLeavesTimeForTheRelease: under a caller's deadline (the
// Lambda invocation's), the send's calls end 500 ms before it, and the
// release of a failed send runs with the rest, never past the caller's
// deadline; without a deadline the release gets 3 s.
func TestSendDeadlineLeavesTimeForTheRelease(t *testing.T) {
	f := newFixture(t, testLimits)
	sender := &deadlineSender{}
	rec := &releaseRecorder{Store: f.store}
	f.deps.Senders[verification.Email] = sender
	f.deps.Store = rec
	f.rebuild()
	deadline := time.Now().Add(2 * time.Second).Truncate(time.Millisecond) // under the 3 s a release gets at most
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if _, _, err := f.svc.Send(ctx, emailSend("a@b.c", "ANY")); verification.KindOf(err) != verification.KindSendFailed {
		t.Fatalf("got %v, want send_failed", err)
	}
	if want := deadline.Add(-500 * time.Millisecond); !sender.deadline.Equal(want) {
		t.Errorf("the send's deadline is %v before the caller's, want 500ms", deadline.Sub(sender.deadline))
	}
	if len(rec.deadlines) != 1 || !rec.deadlines[0].Equal(deadline) {
		t.Fatalf("release deadlines %v, want one at the caller's deadline %v", rec.deadlines, deadline)
	}
	// The release ran: the cooldown was given back.
	f.deps.Senders[verification.Email] = f.email
	f.rebuild()
	if _, err := f.send(t, emailSend("a@b.c", "ANY")); err != nil {
		t.Fatalf("retry after the released send: %v", err)
	}

	// No caller deadline: no deadline on the send, 3 s for the release.
	f.deps.Senders[verification.Email] = sender
	f.rebuild()
	before := time.Now()
	if _, _, err := f.svc.Send(context.Background(), emailSend("c@d.e", "ANY")); verification.KindOf(err) != verification.KindSendFailed {
		t.Fatalf("got %v, want send_failed", err)
	}
	if !sender.deadline.IsZero() {
		t.Errorf("the send has a deadline %v without a caller's", sender.deadline)
	}
	if got := rec.deadlines[1].Sub(before); got < 3*time.Second || got > time.Minute {
		t.Errorf("release without a caller's deadline got %v, want 3s", got)
	}
}
