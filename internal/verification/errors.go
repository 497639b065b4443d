package verification

import (
	"errors"
	"fmt"
	"time"
)

// Kind is the stable, machine-readable name of a refusal. It is the "error"
// field of the API's error envelope and never changes once published.
type Kind string

// The catalogue of refusals. Each Kind has exactly one error_code (Code) and,
// in package httpapi, exactly one HTTP status.
const (
	KindInvalidRequest          Kind = "invalid_request"
	KindInvalidPhoneNumber      Kind = "invalid_phone_number"
	KindInvalidEmail            Kind = "invalid_email"
	KindInvalidTarget           Kind = "invalid_target"
	KindInvalidVerificationCode Kind = "invalid_verification_code"
	KindInvalidCaptcha          Kind = "invalid_captcha"
	KindCaptchaExpired          Kind = "captcha_expired"
	KindVerificationExpired     Kind = "verification_expired"
	KindCaptchaUsed             Kind = "captcha_used"
	KindCaptchaInvalid          Kind = "captcha_invalid"
	KindUserNotFound            Kind = "user_not_found"
	KindUserAlreadyExists       Kind = "user_already_exists"
	KindChannelDisabled         Kind = "channel_disabled"
	KindPayloadTooLarge         Kind = "payload_too_large"
	KindCaptchaRequired         Kind = "captcha_required"
	KindRateLimitExceeded       Kind = "rate_limit_exceeded"
	KindDestinationBlocked      Kind = "destination_blocked"
	KindTooManyAttempts         Kind = "too_many_attempts"
	KindOriginNotAllowed        Kind = "origin_not_allowed"
	KindNotFound                Kind = "not_found"
	KindMethodNotAllowed        Kind = "method_not_allowed"
	KindSendFailed              Kind = "send_failed"
	KindServiceUnavailable      Kind = "service_unavailable"
	KindInternal                Kind = "internal_error"

	// An Idempotency-Key in use (idempotency.go).
	KindIdempotencyKeyReused     Kind = "idempotency_key_reused"
	KindIdempotencyKeyInProgress Kind = "idempotency_key_in_progress"
)

var codes = map[Kind]int{
	KindInvalidRequest:          4000,
	KindInvalidPhoneNumber:      4001,
	KindInvalidEmail:            4001,
	KindInvalidTarget:           4001,
	KindInvalidVerificationCode: 4001,
	KindInvalidCaptcha:          4001,
	KindCaptchaExpired:          4002,
	KindVerificationExpired:     4002,
	KindCaptchaUsed:             4003,
	KindCaptchaInvalid:          4003,
	KindUserNotFound:            4004,
	KindUserAlreadyExists:       4009,
	KindChannelDisabled:         4006,
	KindPayloadTooLarge:         4013,
	KindCaptchaRequired:         4028,
	KindRateLimitExceeded:       4029,
	KindDestinationBlocked:      4031,
	KindTooManyAttempts:         4029,
	KindOriginNotAllowed:        4030,
	KindNotFound:                4040,
	KindMethodNotAllowed:        4050,
	KindSendFailed:              5002,
	KindServiceUnavailable:      5003,
	KindInternal:                5000,

	KindIdempotencyKeyReused:     4022,
	KindIdempotencyKeyInProgress: 4091,
}

// Kinds lists every Kind of the catalogue, for tests that check each one is
// mapped everywhere it must be.
func Kinds() []Kind {
	out := make([]Kind, 0, len(codes))
	for k := range codes {
		out = append(out, k)
	}
	return out
}

// Code is the numeric error_code of the kind.
func (k Kind) Code() int {
	if c, ok := codes[k]; ok {
		return c
	}
	return codes[KindInternal]
}

// Error is a refusal the API reports to its caller. Description is shown to
// people and must never hold a code, a secret or another user's data; Err is
// the cause, for logs only.
type Error struct {
	Kind        Kind
	Description string
	// RetryAfter is set on rate limits: whole seconds after which the same
	// request can succeed.
	RetryAfter int
	// AttemptsRemaining is set on invalid_verification_code.
	AttemptsRemaining *int
	// LogReason says which rule refused, for the log line only (several
	// rules share a kind: sms_budget_exhausted is a rate_limit_exceeded).
	LogReason string
	Err       error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Description, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Description)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error of the given kind.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Description: fmt.Sprintf(format, args...)}
}

// KindOf reports the Kind of err: the Kind of the first *Error in its chain,
// service_unavailable for ErrUnavailable, internal_error for anything else.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	// errors.AsType, unlike errors.As, needs no pointer that escapes: one
	// allocation less on every request.
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	if errors.Is(err, ErrUnavailable) {
		return KindServiceUnavailable
	}
	return KindInternal
}

// ErrUnavailable is returned (wrapped) by stores when the database cannot be
// reached or throttles: the service fails closed with service_unavailable.
var ErrUnavailable = errors.New("store unavailable")

// ErrUserLookup is returned (wrapped, with its cause) by Store.Reserve when
// the reservation committed but an ANY send's user lookup failed: the caller
// releases the reservation and answers from the cause.
var ErrUserLookup = errors.New("user lookup")

// ErrOutcomeUnknown is returned (wrapped) by a Sender when the request reached
// the provider but no answer came back in time: the message may still be
// delivered, so the code and the cooldown are kept.
var ErrOutcomeUnknown = errors.New("delivery outcome unknown")

// Refusals shared by the service and the stores. They are values so stores
// and tests can compare them with errors.Is.
var (
	// ErrExpired: unknown, expired, used, superseded or dead verification.
	ErrExpired = &Error{Kind: KindVerificationExpired, Description: "Verification code expired or invalid, please request a new one"}
	// ErrUserNotFound: target USER and no such user.
	ErrUserNotFound = &Error{Kind: KindUserNotFound, Description: "User does not exist"}
	// ErrUserExists: target NOT_USER and the user exists.
	ErrUserExists = &Error{Kind: KindUserAlreadyExists, Description: "User already exists"}
	// ErrCaptchaRequired: the send looks abnormal and came without a captcha token.
	ErrCaptchaRequired = &Error{Kind: KindCaptchaRequired, Description: "Need to complete image verification code verification"}
	// ErrCaptchaInvalid: the captcha token is forged, expired or already used.
	ErrCaptchaInvalid = &Error{Kind: KindCaptchaInvalid, Description: "Captcha token is invalid, expired or already used; please solve a new captcha"}
	// ErrTooManyAttempts: the wrong code that used up the last attempt.
	ErrTooManyAttempts = &Error{Kind: KindTooManyAttempts, Description: "Too many wrong verification codes; this code is no longer valid, please request a new one"}
	// ErrDestinationBlocked: the number's prefix is blocked by the pumping
	// breaker or by the operator.
	ErrDestinationBlocked = &Error{Kind: KindDestinationBlocked, Description: "SMS to this number range is temporarily blocked"}
	// ErrChannelDisabled: the channel is switched off or has no sender.
	ErrChannelDisabled = &Error{Kind: KindChannelDisabled, Description: "This sign-in channel is not enabled"}
)

// RateLimited is the rate_limit_exceeded refusal with its wait in seconds.
func RateLimited(retryAfter int) *Error {
	return rateLimited("Verification code send frequency too high, please try again in %d seconds", retryAfter)
}

// RequestsLimited is the rate_limit_exceeded refusal of an IP key's budget
// of verifies or captcha images: the same error as RateLimited, with a
// description that does not speak of sending.
func RequestsLimited(retryAfter int) *Error {
	return rateLimited("Too many requests from this network, please try again in %d seconds", retryAfter)
}

// rateLimited is a rate_limit_exceeded refusal whose description format
// takes the wait, at least one second.
func rateLimited(format string, retryAfter int) *Error {
	retryAfter = max(retryAfter, 1)
	return &Error{Kind: KindRateLimitExceeded, Description: fmt.Sprintf(format, retryAfter), RetryAfter: retryAfter}
}

// RequestsLimitedFor is RequestsLimited with the wait as a duration,
// rounded up to whole seconds.
func RequestsLimitedFor(wait time.Duration) *Error {
	return RequestsLimited(ceilSeconds(wait))
}

// TooManyAttempts is the too_many_attempts refusal of a code sent at sentAt:
// the code is dead, and RetryAfter says when the target's cooldown lets a
// new code be sent (at least 1 s), so every 429 carries its wait.
func (l Limits) TooManyAttempts(sentAt, now time.Time) *Error {
	e := *ErrTooManyAttempts
	e.RetryAfter = ceilSeconds(sentAt.Add(l.Cooldown).Sub(now))
	return &e
}

// WrongCode is the invalid_verification_code refusal with the attempts left.
func WrongCode(remaining int) *Error {
	return &Error{
		Kind:              KindInvalidVerificationCode,
		Description:       "Wrong verification code, please re-enter",
		AttemptsRemaining: &remaining,
	}
}
