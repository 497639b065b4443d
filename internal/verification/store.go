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
	CaptchaID  string    // consumed captcha token, "" for none
	CaptchaExp time.Time // when that token expires (its record may go then)
	Now        time.Time
	ExpiresAt  time.Time // code expiry
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
	Now         time.Time
	MaxAttempts int
}

// Store keeps codes and limits. Every rule is enforced atomically by the
// store itself (DynamoDB condition expressions, or one lock in memory); the
// service never reads to decide and then writes.
type Store interface {
	// Reserve commits r, or returns the refusal SPEC §3.4a names: a
	// *Error of rate_limit_exceeded, captcha_invalid, captcha_required,
	// user_not_found or user_already_exists (the last two after spending the
	// IP's budget), or an error wrapping ErrUnavailable.
	Reserve(ctx context.Context, r Reservation) error
	// Release undoes a reservation whose message could not be sent: the code
	// is removed and the target's cooldown and cap slot given back, unless a
	// newer send already replaced it. The IP's budget stays spent.
	Release(ctx context.Context, r Reservation) error
	// Consume spends the code if hash is right and the code is the target's
	// current, unexpired, unused one with attempts left. A wrong code counts
	// an attempt: *Error invalid_verification_code with attempts remaining, or
	// ErrTooManyAttempts for the last one. Anything else is ErrExpired.
	Consume(ctx context.Context, a Attempt) (Record, error)
}

// Users answers whether a user exists for a normalised identity.
type Users interface {
	Exists(ctx context.Context, identity string) (bool, error)
}

// LocalUsers is a Users that answers from memory, never waiting on I/O (the
// embedded directory of local mode). Send asks it in line rather than on a
// goroutine beside the reservation.
type LocalUsers interface {
	Users
	// LocalLookups only marks the implementation.
	LocalLookups()
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

// CaptchaTokens checks the x-captcha-token header of a send.
type CaptchaTokens interface {
	// Check returns the token's pass, or ErrCaptchaInvalid when it is forged
	// or expired.
	Check(token string, now time.Time) (CaptchaPass, error)
}
