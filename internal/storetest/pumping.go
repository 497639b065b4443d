package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/verification"
)

const (
	destBlocked = "destination_blocked"
	// prefixA and prefixB are two breaker prefixes (7 digits).
	prefixA = "8613800"
	prefixB = "8613900"
)

// Pumping is the pumping configuration of the cases unless one says
// otherwise: the breaker at a limit of 3 (suspect from 3 unverified sends,
// blocked from 9), no global budget.
func Pumping() verification.Pumping {
	return verification.Pumping{PrefixLength: 7, UnverifiedLimit: 3, Window: time.Hour}
}

// smsSends builds SMS reservations as the service does: the breaker prefix
// from the number, a budget shard when asked.
type smsSends struct {
	sends
	p verification.Pumping
}

// new is a send to number n (four digits) of prefix, from its own IP
// unless ip is given.
func (b *smsSends) new(prefix string, n int, ip string, now time.Time) verification.Reservation {
	phone := fmt.Sprintf("+%s%04d", prefix, n)
	if ip == "" {
		ip = "ip-" + phone
	}
	r := b.sends.new(phone, ip, now)
	r.Channel = verification.SMS
	r.Prefix = b.p.Counted(phone)
	return r
}

func runPumping(t *testing.T, newStore NewFunc) {
	m := time.Minute
	t.Run("breaker: suspect, then blocked, then cooled", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), Pumping(), nil)
		b := smsSends{p: Pumping()}
		var got []string
		send := func(prefix string, n int, at time.Duration, captcha string) {
			r := b.new(prefix, n, "", T0.Add(at))
			r.CaptchaID = captcha
			got = append(got, fmt.Sprintf("%s/%d:%s", prefix, n, Outcome(reserve(t.Context(), st.Codes, r))))
		}
		for n := range 3 {
			send(prefixA, n, 0, "") // three unverified sends: suspect from now on
		}
		send(prefixA, 3, m, "")   // captcha_required, whatever the IP and target
		send(prefixB, 3, m, "")   // another prefix is not affected
		send(prefixA, 3, m, "k3") // a captcha token lifts a suspect prefix
		for n := 4; n < 9; n++ {  // up to 9 = 3 x 3 unverified sends
			send(prefixA, n, m, fmt.Sprintf("k%d", n))
		}
		send(prefixA, 9, 2*m, "k9") // blocked: a captcha does not help
		send(prefixA, 9, 2*m, "")   // blocked beats captcha_required
		send(prefixA, 3, 2*m, "")   // blocked beats the cooldown of a number sent to
		// 00:55 reads the window of buckets 00:00..00:59: still blocked. At
		// 01:00 the 00:00 bucket left it, and the 00:01 sends too: healthy.
		send(prefixA, 10, 55*m, "k10")
		send(prefixA, 9, time.Hour, "") // the refused sends spent no cooldown
		// Nor a use of their captcha tokens (one use each): k9 and k10 serve
		// a send now, and are spent by it.
		send(prefixA, 11, time.Hour, "k9")
		send(prefixA, 12, time.Hour, "k10")
		send(prefixA, 13, time.Hour, "k9")
		want := []string{
			"8613800/0:ok", "8613800/1:ok", "8613800/2:ok",
			"8613800/3:" + capRequired, "8613900/3:ok", "8613800/3:ok",
			"8613800/4:ok", "8613800/5:ok", "8613800/6:ok", "8613800/7:ok", "8613800/8:ok",
			"8613800/9:" + destBlocked, "8613800/9:" + destBlocked, "8613800/3:" + destBlocked,
			"8613800/10:" + destBlocked,
			"8613800/9:ok",
			"8613800/11:ok", "8613800/12:ok", "8613800/13:" + capInvalid,
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("outcomes\n got %v\nwant %v", got, want)
		}
	})

	t.Run("breaker refusals carry the counts", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), Pumping(), nil)
		b := smsSends{p: Pumping()}
		for n := range 3 {
			mustReserve(t, st, b.new(prefixA, n, "", at(0)))
		}
		_, err := st.Codes.Reserve(t.Context(), b.new(prefixA, 3, "", at(time.Second)))
		var pr *verification.PrefixRefusal
		if !errors.As(err, &pr) {
			t.Fatalf("refusal %v, want a *PrefixRefusal", err)
		}
		want := verification.PrefixRefusal{Prefix: prefixA, Counts: verification.PrefixCounts{Unverified: 3, Excess: 3}, State: verification.Suspect}
		if pr.Prefix != want.Prefix || pr.Counts != want.Counts || pr.State != want.State || pr.Err.LogReason != verification.ReasonPrefixSuspect {
			t.Errorf("refusal %+v (reason %q), want %+v", *pr, pr.Err.LogReason, want)
		}
	})

	t.Run("verified codes keep a busy prefix healthy", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), Pumping(), nil)
		b := smsSends{p: Pumping()}
		// Five sends, each verified: 0 unverified, 5 verified, so an excess
		// of 0 - 4 x 5 = -20.
		for n := range 5 {
			r := b.new(prefixA, n, "", at(time.Duration(n)*time.Second))
			mustReserve(t, st, r)
			if err := consume(t, st, attempt(r, right(r), r.Now)); err != nil {
				t.Fatalf("verify %d: %v", n, err)
			}
		}
		// 20 unverified sends bring the excess to 0: still healthy, though
		// far past the limit of 3. The 21st makes it 1: 21 unverified, more
		// than 4 x 5 verified, and past 3 x 3: blocked.
		var got []string
		for n := 5; n < 27; n++ {
			got = append(got, Outcome(reserve(t.Context(), st.Codes, b.new(prefixA, n, "", at(time.Minute)))))
		}
		want := slices.Repeat([]string{ok}, 21)
		want = append(want, destBlocked)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("outcomes\n got %v\nwant %v", got, want)
		}
	})

	t.Run("pumping refusals come before the ip budget and spend nothing", func(t *testing.T) {
		t.Parallel()
		limits := Limits()
		limits.IPCap = 3
		st := newStore(t, limits, Pumping(), nil)
		b := smsSends{p: Pumping()}
		for n := range 3 {
			mustReserve(t, st, b.new(prefixA, n, "ip1", at(0))) // ip1 spent, prefix suspect
		}
		got := []string{
			Outcome(reserve(t.Context(), st.Codes, b.new(prefixA, 3, "ip1", at(time.Second)))),
			Outcome(reserve(t.Context(), st.Codes, b.new(prefixB, 3, "ip1", at(time.Second)))),
			Outcome(reserve(t.Context(), st.Codes, b.new(prefixA, 4, "ip2", at(time.Second)))),
		}
		want := []string{capRequired, rate(3599), capRequired}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("outcomes %v, want %v", got, want)
		}
		// ip2 spent nothing on its refusal: it still has its 3 sends.
		for n := range 3 {
			mustReserve(t, st, b.new(prefixB, 10+n, "ip2", at(2*time.Second)))
		}
	})

	t.Run("global budget: shards, caps and the rolling hour", func(t *testing.T) {
		t.Parallel()
		// 20 over 16 shards: shards 0-3 admit 2 sends an hour, 4-15 one.
		p := Pumping()
		p.UnverifiedLimit = 0
		p.Budget = 20
		if p.Shards() != 16 || p.ShardCap(3) != 2 || p.ShardCap(4) != 1 {
			t.Fatalf("shards %d, caps %d %d; the case assumes 16, 2, 1", p.Shards(), p.ShardCap(3), p.ShardCap(4))
		}
		st := newStore(t, Limits(), p, nil)
		b := smsSends{p: p}
		n := 0
		send := func(shard int, at time.Duration) string {
			n++
			r := b.new(prefixA, n, "", T0.Add(at))
			r.CountBudget, r.BudgetShard = true, shard
			_, err := st.Codes.Reserve(t.Context(), r)
			if e, isErr := errors.AsType[*verification.Error](err); isErr && e.LogReason != verification.ReasonBudgetExhausted {
				t.Errorf("budget refusal's log reason %q, want %q", e.LogReason, verification.ReasonBudgetExhausted)
			}
			return Outcome(err)
		}
		got := []string{
			send(3, 0), send(3, m), send(3, 2*m), // cap 2
			send(4, 0), send(4, m), // cap 1
			send(5, m),                     // other shards have their own
			send(3, time.Hour),             // the 00:00 send left the window
			send(3, time.Hour+30*m),        // the 00:01 one did too
			send(4, time.Hour-time.Second), // 1 s before the 00:00 one leaves
		}
		want := []string{ok, ok, rate(3480), ok, rate(3540), ok, ok, ok, rate(1)}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("outcomes\n got %v\nwant %v", got, want)
		}
	})

	t.Run("a send the global budget refuses spends no use of its captcha token", func(t *testing.T) {
		t.Parallel()
		p := Pumping()
		p.UnverifiedLimit = 0
		p.Budget = 20 // shard 4 admits one send an hour (the case above)
		st := newStore(t, Limits(), p, nil)
		b := smsSends{p: p}
		send := func(n, shard int, captcha string) string {
			r := b.new(prefixA, n, "", at(time.Second))
			r.CountBudget, r.BudgetShard, r.CaptchaID = true, shard, captcha
			return Outcome(reserve(t.Context(), st.Codes, r))
		}
		got := []string{
			send(0, 4, ""),
			send(1, 4, "k1"), // shard 4 spent
			send(2, 5, "k1"), // k1 still has its one use
			send(3, 6, "k1"), // which that send spent
		}
		want := []string{ok, rate(3600), ok, capInvalid}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("outcomes %v, want %v", got, want)
		}
	})

	t.Run("concurrent sends to one prefix", func(t *testing.T) {
		t.Parallel()
		st := newStore(t, Limits(), Pumping(), nil)
		b := smsSends{p: Pumping()}
		accepted := 0
		for _, o := range race(10, func(i int) string {
			return Outcome(reserve(t.Context(), st.Codes, b.new(prefixA, i, "", at(0))))
		}) {
			switch {
			case o == ok:
				accepted++
			case o == capRequired, strings.HasPrefix(o, "unavailable: "): // a conflict that outlived its retries
			default:
				t.Errorf("concurrent send: %s", o)
			}
		}
		// Never more than the limit; sending on one by one reaches exactly it.
		for n := 10; accepted < 4 && n < 20; n++ {
			if Outcome(reserve(t.Context(), st.Codes, b.new(prefixA, n, "", at(time.Second)))) != ok {
				break
			}
			accepted++
		}
		if accepted != 3 {
			t.Errorf("%d sends accepted, want exactly the limit 3", accepted)
		}
	})
}
