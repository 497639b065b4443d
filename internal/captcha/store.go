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

// Store keeps challenges. Consuming a captcha_token happens inside the send's
// reservation (verification.Reservation.CaptchaID), not here.
type Store interface {
	// PutChallenge stores a new challenge.
	PutChallenge(ctx context.Context, c Challenge) error
	// SolveChallenge marks the challenge solved if the hash matches and it is
	// unexpired, unsolved and has attempts left. A wrong hash counts an
	// attempt and returns ErrWrong; otherwise ErrExpired or ErrUsed.
	SolveChallenge(ctx context.Context, s Solve) error
}
