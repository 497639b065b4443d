package captcha

import (
	"context"
	"errors"
	"time"
)

// Challenge is one issued image captcha as the store keeps it: the answer
// only as a keyed hash.
type Challenge struct {
	ID         string
	AnswerHash string
	ExpiresAt  time.Time
	IP         string    // the IP key that asked for it, whose image budget it spends
	Now        time.Time // when it was issued
}

// Solve is one attempt at a challenge.
type Solve struct {
	ID          string
	AnswerHash  string
	Now         time.Time
	MaxAttempts int // wrong answers before the challenge dies
}

// Refusals of Store.Solve.
var (
	// ErrExpired: unknown, expired, or dead after too many wrong answers.
	ErrExpired = errors.New("captcha expired")
	// ErrUsed: solved before.
	ErrUsed = errors.New("captcha used")
	// ErrWrong: the answer was wrong (an attempt was counted).
	ErrWrong = errors.New("captcha answer wrong")
)

// Store keeps challenges. Spending a captcha_token's uses happens inside the
// send's reservation (verification.Reservation.CaptchaID), not here.
type Store interface {
	// PutChallenge stores a new challenge and spends one image of its IP
	// key's rolling budget (verification.Limits.CaptchaIPCap) in the same
	// write; past it, rate_limit_exceeded and nothing is stored.
	PutChallenge(ctx context.Context, c Challenge) error
	// SolveChallenge counts an answer at an unexpired, unsolved challenge
	// with attempts left, and only then compares it (so a burst of answers
	// never has more than MaxAttempts compared): a right hash solves it, a
	// wrong one returns ErrWrong. Otherwise ErrExpired or ErrUsed.
	SolveChallenge(ctx context.Context, s Solve) error
}
