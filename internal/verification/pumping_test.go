package verification_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/memstore"
	"github.com/verifykit/verifykit/internal/verification"
)

// recordingBreaker records the transitions the service reports.
type recordingBreaker struct{ got []string }

func (r *recordingBreaker) Transition(t verification.BreakerTransition) {
	s := fmt.Sprintf("%s %s->%s", t.Prefix, t.From, t.To)
	if t.CountsKnown {
		s += fmt.Sprintf(" %d/%d", t.Counts.Unverified, t.Counts.Excess)
	}
	r.got = append(r.got, s)
}

// seqCaptcha accepts the token "good", each time as a new token (the
// breaker cases need one per send).
type seqCaptcha struct{ n int }

func (c *seqCaptcha) Check(tok, _ string, now time.Time) (verification.CaptchaPass, error) {
	if tok != "good" {
		return verification.CaptchaPass{}, verification.ErrCaptchaInvalid
	}
	c.n++
	return verification.CaptchaPass{ID: fmt.Sprintf("cap%d", c.n), Expires: now.Add(5 * time.Minute)}, nil
}

func pumpingFixture(t *testing.T, p verification.Pumping) (*fixture, *recordingBreaker) {
	t.Helper()
	f := newFixture(t, testLimits)
	f.store = memstore.New(memstore.Options{Limits: testLimits, Pumping: p})
	b := &recordingBreaker{}
	f.deps.Store, f.deps.Captcha, f.deps.Breaker, f.opts.Pumping = f.store, &seqCaptcha{}, b, p
	f.rebuild()
	return f, b
}

func smsSend(phone, ip string, captcha bool) verification.SendRequest {
	r := verification.SendRequest{Target: ptr("ANY"), PhoneNumber: ptr(phone), IP: ip}
	if captcha {
		r.CaptchaToken = ptr("good")
	}
	return r
}

func outcome(err error) string {
	if err == nil {
		return "ok"
	}
	return string(verification.KindOf(err))
}

func TestPumpingPrefixAndLists(t *testing.T) {
	p := verification.Pumping{PrefixLength: 7, UnverifiedLimit: 20, Allow: []string{"86139"}, Block: []string{"234", "8613700"}}
	tests := []struct {
		identity        string
		prefix, counted string
		blocked         bool
	}{
		{"+8613800138000", "8613800", "8613800", false},
		{"+8613900138000", "8613900", "", false}, // allowed: never counted
		{"+8613700138000", "8613700", "8613700", true},
		{"+2348012345678", "2348012", "2348012", true}, // a whole country code
		{"+123", "", "", false},                        // shorter than a prefix
		{"user@example.com", "", "", false},
	}
	for _, tt := range tests {
		if got := p.Prefix(tt.identity); got != tt.prefix {
			t.Errorf("Prefix(%s) = %q, want %q", tt.identity, got, tt.prefix)
		}
		if got := p.Counted(tt.identity); got != tt.counted {
			t.Errorf("Counted(%s) = %q, want %q", tt.identity, got, tt.counted)
		}
		if got := p.Blocked(tt.identity); got != tt.blocked {
			t.Errorf("Blocked(%s) = %v, want %v", tt.identity, got, tt.blocked)
		}
	}
	off := p
	off.UnverifiedLimit = 0
	if got := off.Counted("+8613800138000"); got != "" {
		t.Errorf("breaker off: Counted = %q, want none", got)
	}
}

func TestBudgetShards(t *testing.T) {
	// The caps add up to the budget exactly, no shard admits more than
	// BudgetShardCap, and small budgets still spread over 16 items.
	for _, budget := range []int{1, 2, 15, 16, 20, 1000, 1001, 7200, 1000000} {
		p := verification.Pumping{Budget: budget}
		n, sum, most := p.Shards(), 0, 0
		for i := range n {
			c := p.ShardCap(i)
			if c < 1 {
				t.Errorf("budget %d: shard %d admits %d", budget, i, c)
			}
			sum += c
			most = max(most, c)
		}
		if sum != budget || most > verification.BudgetShardCap || most != p.MaxShardCap() || n < min(budget, 16) {
			t.Errorf("budget %d: %d shards, caps add to %d, largest %d (MaxShardCap %d)", budget, n, sum, most, p.MaxShardCap())
		}
	}
	if got := (verification.Pumping{Budget: 1000}).Shards(); got != 20 {
		t.Errorf("budget 1000: %d shards, want 20 (README arithmetic)", got)
	}
}

func TestBreakerState(t *testing.T) {
	p := verification.Pumping{UnverifiedLimit: 20}
	tests := []struct {
		unverified, verified int64
		want                 verification.BreakerState
	}{
		{19, 0, verification.Healthy},
		{20, 0, verification.Suspect},
		{20, 4, verification.Suspect},  // 20 > 16
		{20, 5, verification.Healthy},  // 20 is not more than 4 x 5
		{59, 14, verification.Suspect}, // 59 > 56
		{60, 14, verification.Blocked},
		{60, 15, verification.Healthy}, // verified codes keep a busy prefix healthy
		{1000, 0, verification.Blocked},
	}
	for _, tt := range tests {
		c := verification.PrefixCounts{Unverified: tt.unverified, Excess: tt.unverified - verification.VerifiedWeight*tt.verified}
		if got := p.State(c); got != tt.want {
			t.Errorf("%d unverified, %d verified: %s, want %s", tt.unverified, tt.verified, got, tt.want)
		}
	}
	if got := (verification.Pumping{}).State(verification.PrefixCounts{Unverified: 1000, Excess: 1000}); got != verification.Healthy {
		t.Errorf("breaker off: %s, want healthy", got)
	}
}

func TestPumpingThroughTheService(t *testing.T) {
	p := verification.Pumping{PrefixLength: 7, UnverifiedLimit: 2, Block: []string{"8613700"}, Allow: []string{"8613900"}, Window: time.Hour}
	f, breaker := pumpingFixture(t, p)
	var got []string
	step := func(req verification.SendRequest) {
		f.clock.advance(time.Second)
		_, err := f.send(t, req)
		got = append(got, outcome(err))
	}
	step(smsSend("+8613700138000", "ip1", false)) // operator block list
	step(smsSend("+8613700138000", "ip1", true))  // a captcha does not lift it
	step(emailSend("u1@example.com", "ANY"))      // email is never counted
	step(smsSend("+8613800138001", "ip2", false)) // 1 unverified
	step(smsSend("+8613800138002", "ip3", false)) // 2: suspect from now on
	step(smsSend("+8613800138003", "ip4", false)) // captcha_required (reported: healthy -> suspect)
	step(smsSend("+8613800138003", "ip4", true))  // a captcha lifts it
	step(smsSend("+8613900138001", "ip5", false)) // an allowed prefix is never gated
	step(smsSend("+8613900138002", "ip6", false))
	step(smsSend("+8613900138003", "ip7", false))
	step(smsSend("+8613800138004", "ip8", true))   // 4 unverified
	step(smsSend("+8613800138005", "ip9", true))   // 5
	step(smsSend("+8613800138006", "ip10", true))  // 6 = 3 x 2: blocked from now on
	step(smsSend("+8613800138007", "ip11", false)) // destination_blocked (reported)
	step(smsSend("+8613800138010", "ip14", true))  // still blocked: reported once
	f.clock.advance(time.Hour)
	step(smsSend("+8613800138008", "ip12", true))  // cooled: a captcha send proves it is not blocked
	step(smsSend("+8613800138009", "ip13", false)) // and one without proves it healthy
	want := []string{
		"destination_blocked", "destination_blocked", "ok",
		"ok", "ok", "captcha_required", "ok",
		"ok", "ok", "ok",
		"ok", "ok", "ok", "destination_blocked", "destination_blocked",
		"ok", "ok",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("outcomes\n got %v\nwant %v", got, want)
	}
	if n := len(f.sms.msgs); n != 11 {
		t.Errorf("%d SMS sent, want 11", n)
	}
	wantTrips := []string{
		"8613800 healthy->suspect 2/2",
		"8613800 suspect->blocked 6/6",
		"8613800 blocked->suspect",
		"8613800 suspect->healthy",
	}
	if strings.Join(breaker.got, ", ") != strings.Join(wantTrips, ", ") {
		t.Errorf("transitions\n got %v\nwant %v", breaker.got, wantTrips)
	}

	// A verified SMS code counts for its prefix: two verified codes outweigh
	// eight unverified sends (8 is not more than 4 x 2), so a ninth is still
	// accepted; a tenth finds 9 > 4 x 2, and 9 >= 3 x 2: blocked.
	f2, _ := pumpingFixture(t, p)
	for i := range 2 {
		res, err := f2.send(t, smsSend(fmt.Sprintf("+86138001380%02d", i), fmt.Sprintf("v%d", i), false))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f2.verify(res.VerificationID, f2.sms.last(t).Code); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 9 {
		if _, err := f2.send(t, smsSend(fmt.Sprintf("+86138001381%02d", i), fmt.Sprintf("u%d", i), false)); err != nil {
			t.Fatalf("unverified send %d after two verified ones: %v", i, err)
		}
	}
	if _, err := f2.send(t, smsSend("+8613800138200", "u9", false)); outcome(err) != "destination_blocked" {
		t.Errorf("tenth unverified send: %v, want destination_blocked", err)
	}
}

// TestBreakerWatchOutlivesARebuild: a service built again around the same
// watch (as a key rotation does) remembers the trip the first one saw, so
// it reports the prefix's recovery and not the same trip again; one built
// with a watch of its own forgets it.
func TestBreakerWatchOutlivesARebuild(t *testing.T) {
	p := verification.Pumping{PrefixLength: 7, UnverifiedLimit: 2, Window: time.Hour}
	for _, shared := range []bool{true, false} {
		f, breaker := pumpingFixture(t, p)
		f.deps.Watch = &verification.BreakerWatch{}
		f.rebuild()
		for i, want := range []string{"ok", "ok", "captcha_required"} {
			f.clock.advance(time.Second)
			if _, err := f.send(t, smsSend(fmt.Sprintf("+861380013800%d", i), fmt.Sprintf("ip%d", i), false)); outcome(err) != want {
				t.Fatalf("send %d: %v, want %s", i, err, want)
			}
		}
		if !shared {
			f.deps.Watch = nil
		}
		f.rebuild()
		f.clock.advance(time.Hour) // the window cooled
		if _, err := f.send(t, smsSend("+8613800138009", "ip9", false)); err != nil {
			t.Fatal(err)
		}
		want := "8613800 healthy->suspect 2/2"
		if shared {
			want += ", 8613800 suspect->healthy"
		}
		if got := strings.Join(breaker.got, ", "); got != want {
			t.Errorf("shared watch %v: transitions %q, want %q", shared, got, want)
		}
	}
}

func TestBudgetRefusalThroughTheService(t *testing.T) {
	// A budget of 1 is one shard admitting one SMS per hour; email is not
	// counted.
	f, _ := pumpingFixture(t, verification.Pumping{Budget: 1, PrefixLength: 7, Window: time.Hour})
	if _, err := f.send(t, smsSend("+8613800138000", "ip1", false)); err != nil {
		t.Fatal(err)
	}
	f.clock.advance(time.Minute)
	_, _, err := f.svc.Send(context.Background(), smsSend("+8613800138001", "ip2", false))
	e, ok := err.(*verification.Error)
	if !ok || e.Kind != verification.KindRateLimitExceeded || e.RetryAfter != 3540 || e.LogReason != verification.ReasonBudgetExhausted {
		t.Errorf("second SMS: %#v, want rate_limit_exceeded after 3540 s, logged as %s", err, verification.ReasonBudgetExhausted)
	}
	if _, err := f.send(t, emailSend("u@example.com", "ANY")); err != nil {
		t.Errorf("email after the SMS budget is spent: %v", err)
	}
}
