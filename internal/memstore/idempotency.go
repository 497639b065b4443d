package memstore

import (
	"context"
	"time"

	"github.com/verifykit/verifykit/internal/verification"
)

// The answers of sends with an Idempotency-Key (verification.IdempotencyStore).
// Reserve claims a key under the same lock as the rest of the reservation.

var _ verification.IdempotencyStore = (*Store)(nil)

// idemItem is a claimed key: running until its lease ends, or answered.
type idemItem struct {
	fingerprint string
	owner       string
	expiresAt   time.Time // the lease while running; the keep time once answered
	answer      *verification.Answer
}

// idempotencyHit is the held key's state, or nil when r's key is free.
// Called by Reserve with the lock held.
func (s *Store) idempotencyHit(r verification.Reservation) error {
	if r.Idempotency == nil {
		return nil
	}
	it := s.keys[r.Idempotency.ID]
	if it == nil || !r.Now.Before(it.expiresAt) {
		return nil
	}
	return &verification.IdempotencyHit{Fingerprint: it.fingerprint, Answer: it.answer}
}

// claimIdempotency holds r's key while the send runs. Called by Reserve, with
// the lock held, for an accepted send.
func (s *Store) claimIdempotency(r verification.Reservation) {
	if c := r.Idempotency; c != nil {
		s.keys[c.ID] = &idemItem{fingerprint: c.Fingerprint, owner: c.Owner, expiresAt: c.LeaseUntil}
	}
}

// RememberAnswer records a keyed send's answer: on its own claim, or, for a
// refused send (which claimed nothing), on a free key.
func (s *Store) RememberAnswer(_ context.Context, rec verification.IdempotencyRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.keys[rec.ID]
	answer := rec.Answer
	answer.Body = append([]byte(nil), rec.Answer.Body...)
	switch {
	case rec.Claimed && (it == nil || it.owner != rec.Owner):
		return nil // the lease ended and another request took the key
	case !rec.Claimed && it != nil && rec.Now.Before(it.expiresAt):
		return nil // held by another request meanwhile
	}
	s.keys[rec.ID] = &idemItem{fingerprint: rec.Fingerprint, owner: rec.Owner, expiresAt: rec.KeepUntil, answer: &answer}
	return nil
}

// ReleaseKey frees the key of a failed send that still holds it.
func (s *Store) ReleaseKey(_ context.Context, c verification.IdempotentSend) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.keys[c.ID]; it != nil && it.owner == c.Owner {
		delete(s.keys, c.ID)
	}
	return nil
}

// sweepIdempotency drops expired keys (called by sweep, lock held).
func (s *Store) sweepIdempotency(now time.Time) {
	for k, it := range s.keys {
		if !now.Before(it.expiresAt) {
			delete(s.keys, k)
		}
	}
}
