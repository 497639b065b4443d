package verification

import (
	"context"
	"time"
)

// Requirement is the user check a send carries into its reservation.
type Requirement int

// The user checks of the three targets.
const (
	RequireNothing Requirement = iota // ANY
	RequireUser                       // USER: the user must exist
	RequireNoUser                     // NOT_USER: the user must not exist
)

// Reservation is everything one accepted send commits atomically: the
// target's cooldown, cap and new current code, the IP's budget, the captcha
// token it consumes and the user check. Nothing is sent before it commits.
type Reservation struct {
	Handle     string // pseudonymous key of the target (Keys.Handle)
	IP         string
	Nonce      string // the verification's random part; the code record's key
	CodeHash   string // Keys.CodeHash(Nonce, code)
	Identity   string // normalised phone or email, for the token's subject
	Channel    Channel
	Target     Target
	Require    Requirement
	CaptchaID  string    // captcha token that spends a use, "" for none
	CaptchaExp time.Time // when that token expires (its record may go then)
	Now        time.Time
	ExpiresAt  time.Time // code expiry
	// Idempotency, when the send carries an Idempotency-Key, claims the key
	// in the same commit; a held key makes Reserve return *IdempotencyHit.
	Idempotency *IdempotentSend

	// SMS pumping (Pumping): the breaker prefix the send counts in, "" for
	// none; and, when CountBudget, the shard of the global SMS budget it
	// spends (0 ≤ BudgetShard < Pumping.Shards()).
	Prefix      string
	CountBudget bool
	BudgetShard int
}

// Record is what a verified code proves.
type Record struct {
	Identity string
	Channel  Channel
	Target   Target
}

// Attempt is one verify of a code.
type Attempt struct {
	Handle      string
	Nonce       string
	CodeHash    string
	IP          string // the IP key whose verify budget (Limits.VerifyIPCap) it spends
	Now         time.Time
	MaxAttempts int
}

// Store keeps codes and limits. Every rule is enforced atomically by the
// store itself (DynamoDB condition expressions, or one lock in memory); the
// service never reads to decide and then writes.
type Store interface {
	// Reserve commits r, or returns the refusal the order of precedence
	// names first: a *Error of rate_limit_exceeded, captcha_invalid,
	// captcha_required, user_not_found or user_already_exists (the last two
	// after spending the IP's budget), or an error wrapping ErrUnavailable.
	// The pumping refusals (PumpingJudgement.Refusal) come before all of
	// them; a breaker refusal is a *PrefixRefusal.
	//
	// isUser answers whether the user exists: true for USER and false for
	// NOT_USER (the reservation's own check), looked up for ANY. How is the
	// store's business (DynamoDB reads the user beside its transaction, the
	// memory store under its lock). An error wrapping ErrUserLookup means
	// the reservation committed but that lookup failed: Release it.
	Reserve(ctx context.Context, r Reservation) (isUser bool, err error)
	// Release undoes a reservation whose message could not be sent: the code
	// is removed and the target's cooldown and cap slot given back, unless a
	// newer send already replaced it. The IP's budget stays spent.
	Release(ctx context.Context, r Reservation) error
	// Consume checks a guess at the target's current, unexpired, unused code
	// with attempts left (anything else is ErrExpired). Count first, then
	// compare: the guess is counted durably, under the condition that the code
	// is still alive, before its hash may decide anything, so a burst of
	// concurrent guesses never has more than MaxAttempts of them compared. A
	// right code is spent; a wrong one answers *Error invalid_verification_code
	// with attempts remaining, or too_many_attempts for the last one. A live
	// code's guess also spends the IP key's verify budget, in the same write;
	// past it the answer is rate_limit_exceeded and nothing is counted.
	// A right SMS code counts as verified for its breaker prefix
	// (Pumping.Counted).
	Consume(ctx context.Context, a Attempt) (Record, error)
}

// Message is one code to deliver.
type Message struct {
	Channel Channel
	To      string
	Code    string
	TTL     time.Duration
	Locale  string
}

// Sender delivers messages. An error wrapping ErrOutcomeUnknown means the
// request went out and no answer came back: the message may still arrive.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// CaptchaPass is a captcha token that looked valid (signature, expiry); the
// store still has to consume it.
type CaptchaPass struct {
	ID      string
	Expires time.Time
}

// CaptchaTokens checks the captcha token of a send.
type CaptchaTokens interface {
	// Check returns the token's pass, or ErrCaptchaInvalid when it is forged,
	// expired, or was solved from another IP key than ip.
	Check(token, ip string, now time.Time) (CaptchaPass, error)
}
