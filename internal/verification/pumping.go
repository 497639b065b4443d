package verification

import (
	"strings"
	"time"
)

// Pumping are the defences against SMS pumping (toll fraud: a bot sends
// codes to ranges of numbers whose operator shares the termination fee,
// rotating IPs and numbers so that no per-IP or per-target limit trips).
// docs/security-pumping.md describes them for operators. Both stores keep the
// counters in the send's own reservation and the verify's own writes, so
// they are shared by all instances and cost no extra round trip on a send.
type Pumping struct {
	// Budget is the accepted SMS sends per Window for the whole deployment
	// (0 = off), split evenly over Shards() items (BudgetShardCap).
	Budget int
	// PrefixLength is how many digits after the "+" of an E.164 number make
	// its prefix (7: +8613800138000 is in prefix 8613800).
	PrefixLength int
	// UnverifiedLimit is the breaker's threshold (0 = off): a prefix with
	// this many unverified sends in the window, and more than
	// VerifiedWeight times as many unverified as verified ones, is suspect;
	// at BlockFactor times it, blocked.
	UnverifiedLimit int
	// Allow are prefixes the breaker never gates; Block are prefixes every
	// SMS send to is refused. An entry matches every number that starts
	// with its digits (a whole country code may be listed).
	Allow, Block []string
	// Window is the rolling window of the budget and the breaker (1 h).
	Window time.Duration
}

// The breaker's fixed ratios.
const (
	// VerifiedWeight: a prefix trips only while its unverified sends are
	// more than this many times its verified ones.
	VerifiedWeight = 4
	// BlockFactor times UnverifiedLimit unverified sends block a prefix.
	BlockFactor = 3
	// BreakerBuckets is how many parts the breaker's window is cut into.
	// A send or verify counts in the window of each of the next
	// BreakerBuckets buckets, so a count read in bucket b covers the last
	// (BreakerBuckets-1)/BreakerBuckets to one whole window: the last 50 to
	// 60 minutes of a one-hour window.
	BreakerBuckets = 6
	// BudgetShardCap bounds the sends one shard of the global budget
	// admits per window: each is a slot of one item, and at this size the
	// item stays under 1 KB, one write unit (docs/design.md, "SMS pumping: hot items").
	BudgetShardCap = 50
	// minBudgetShards spreads even a small budget over this many items, so
	// that no item takes more than 2,000/16 = 125 writes per second at the
	// design load (docs/design.md, "SMS pumping: hot items").
	minBudgetShards = 16
)

// Shards is how many items the global budget is split over: enough that no
// shard admits more than BudgetShardCap sends per window, and at least
// minBudgetShards (but never more shards than budget, so each admits one).
func (p Pumping) Shards() int {
	if p.Budget <= 0 {
		return 0
	}
	n := max((p.Budget+BudgetShardCap-1)/BudgetShardCap, minBudgetShards)
	return min(n, p.Budget)
}

// ShardCap is how many sends shard i (0 ≤ i < Shards()) admits per window.
// The budget is split as evenly as integers allow, and the caps add up to
// exactly Budget, so the deployment never sends more than the budget.
func (p Pumping) ShardCap(i int) int {
	n := p.Shards()
	if n == 0 {
		return 0
	}
	c := p.Budget / n
	if i < p.Budget%n {
		c++
	}
	return c
}

// MaxShardCap is the largest ShardCap: the slots each shard item keeps.
func (p Pumping) MaxShardCap() int { return p.ShardCap(0) }

// Digits are the digits of an E.164 number after the "+", "" for anything
// else (an email).
func Digits(identity string) string {
	if len(identity) < 2 || identity[0] != '+' {
		return ""
	}
	return identity[1:]
}

// Prefix is the breaker's prefix of an E.164 identity, "" when the breaker
// is off, the number is shorter than the prefix, or it is not a phone.
func (p Pumping) Prefix(identity string) string {
	d := Digits(identity)
	if p.UnverifiedLimit <= 0 || p.PrefixLength <= 0 || len(d) < p.PrefixLength {
		return ""
	}
	return d[:p.PrefixLength]
}

// Blocked reports whether the operator blocked identity's prefix.
func (p Pumping) Blocked(identity string) bool { return listed(p.Block, Digits(identity)) }

// Allowed reports whether the operator exempted identity's prefix from the
// breaker.
func (p Pumping) Allowed(identity string) bool { return listed(p.Allow, Digits(identity)) }

func listed(list []string, digits string) bool {
	if digits == "" {
		return false
	}
	for _, l := range list {
		if strings.HasPrefix(digits, l) {
			return true
		}
	}
	return false
}

// Counted is the prefix whose breaker a send or verify of identity counts
// in, "" for none (breaker off, an email, an allowed prefix).
func (p Pumping) Counted(identity string) string {
	if p.Allowed(identity) {
		return ""
	}
	return p.Prefix(identity)
}

// Bucket is the breaker bucket of now.
func (p Pumping) Bucket(now time.Time) int64 {
	return now.UnixMilli() / p.bucketMillis()
}

func (p Pumping) bucketMillis() int64 {
	ms := p.Window.Milliseconds() / BreakerBuckets
	if ms < 1 {
		ms = 1
	}
	return ms
}

// BreakerState is what the breaker says of a prefix.
type BreakerState int

// The three states of a prefix.
const (
	Healthy BreakerState = iota
	Suspect              // every SMS send needs a captcha
	Blocked              // destination_blocked
)

func (s BreakerState) String() string {
	switch s {
	case Suspect:
		return "suspect"
	case Blocked:
		return "blocked"
	}
	return "healthy"
}

// PrefixCounts are one prefix's counters over the breaker's window.
// Unverified is sends minus verifies; Excess is Unverified minus
// VerifiedWeight times the verifies, so "more unverified than
// VerifiedWeight times the verified" is Excess > 0. Both stores keep exactly
// these two numbers because a DynamoDB condition can compare a number with a
// constant but cannot multiply.
type PrefixCounts struct {
	Unverified int64
	Excess     int64
}

// A send adds SendUnverified and SendExcess to the counts; a verified code
// adds VerifyUnverified and VerifyExcess (the send leaves the unverified
// ones and VerifiedWeight times one verify weighs against them).
const (
	SendUnverified   = 1
	SendExcess       = 1
	VerifyUnverified = -1
	VerifyExcess     = -1 - VerifiedWeight
)

// State is the breaker's reading of counts.
func (p Pumping) State(c PrefixCounts) BreakerState {
	l := int64(p.UnverifiedLimit)
	switch {
	case l <= 0 || c.Excess <= 0:
		return Healthy
	case c.Unverified >= BlockFactor*l:
		return Blocked
	case c.Unverified >= l:
		return Suspect
	}
	return Healthy
}

// PumpingJudgement is what the pumping defences say of one SMS send, read
// from the counters as they were before it.
type PumpingJudgement struct {
	Prefix      string // "" when the breaker did not count the send
	Counts      PrefixCounts
	State       BreakerState
	BudgetSpent bool // the shard of the global budget the send drew is full
	BudgetRetry time.Duration
}

// JudgeBudget fills in the budget part of j from the slots of the budget
// shard the send drew (its Slots), shard i.
func (p Pumping) JudgeBudget(j *PumpingJudgement, shard Slots, i int, now time.Time) {
	if w := shard.Wait(p.ShardCap(i), p.Window, now); w > 0 {
		j.BudgetSpent, j.BudgetRetry = true, w
	}
}

// Refusal is the pumping refusal of a send, or nil. It comes before every
// limit of Judge (docs/security-pumping.md): a blocked prefix, then the spent global
// budget, then a suspect prefix without a captcha token.
func (j PumpingJudgement) Refusal(captchaGiven bool) error {
	switch {
	case j.State == Blocked:
		return &PrefixRefusal{Err: errPrefixBlocked, Prefix: j.Prefix, Counts: j.Counts, State: Blocked}
	case j.BudgetSpent:
		e := RateLimited(ceilSeconds(j.BudgetRetry))
		e.LogReason = ReasonBudgetExhausted
		return e
	case j.State == Suspect && !captchaGiven:
		return &PrefixRefusal{Err: errPrefixSuspect, Prefix: j.Prefix, Counts: j.Counts, State: Suspect}
	}
	return nil
}

// Log reasons of the pumping refusals.
const (
	ReasonBudgetExhausted = "sms_budget_exhausted"
	ReasonPrefixSuspect   = "prefix_suspect"
	ReasonPrefixBlocked   = "prefix_blocked"
	ReasonPrefixListed    = "prefix_block_list"
)

var (
	errPrefixBlocked = func() *Error { e := *ErrDestinationBlocked; e.LogReason = ReasonPrefixBlocked; return &e }()
	errPrefixSuspect = func() *Error { e := *ErrCaptchaRequired; e.LogReason = ReasonPrefixSuspect; return &e }()
	errPrefixListed  = func() *Error { e := *ErrDestinationBlocked; e.LogReason = ReasonPrefixListed; return &e }()
)

// PrefixRefusal is a refusal by the breaker, with the counts it was read
// from, so the service can report the prefix's transition. It unwraps to
// the *Error the caller answers with.
type PrefixRefusal struct {
	Err    *Error
	Prefix string
	Counts PrefixCounts
	State  BreakerState
}

func (r *PrefixRefusal) Error() string { return r.Err.Error() }
func (r *PrefixRefusal) Unwrap() error { return r.Err }
