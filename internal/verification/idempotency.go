package verification

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"
)

// Idempotent sends. A send may carry an Idempotency-Key (as in the IETF
// httpapi idempotency-key draft): a client that lost the answer retries with
// the same key and gets the first answer again instead of a second SMS or a
// 429. The key's item is claimed inside the send's own reservation
// (Reservation.Idempotency), so a first use costs no extra round trip and two
// concurrent requests with one key cannot both send; the answer is recorded
// with one more write once it is known.

// Idempotency limits.
const (
	// MaxIdempotencyKey is the longest key accepted, in bytes.
	MaxIdempotencyKey = 255
	// IdempotencyKeep is how long a finished request's answer is replayed.
	IdempotencyKeep = 24 * time.Hour
	// IdempotencyLease is how long a claim stands while its request runs.
	// It is far beyond any request's life (the function times out after
	// 10 s), so it only matters when an instance died mid-request: then the
	// key is free again after the lease instead of answering
	// idempotency_key_in_progress for a day.
	IdempotencyLease = time.Minute
)

// Answer is an answer as it was first given, kept to be replayed byte for
// byte: the HTTP adapter renders it, the store keeps it opaque.
type Answer struct {
	Status     int
	Body       []byte
	RetryAfter int // the Retry-After header in seconds, 0 for none
}

// IdempotentSend is a send's claim on its key, part of its reservation.
type IdempotentSend struct {
	ID          string    // keyed hash of the IP key and the client's key (Keys.IdempotencyID)
	Fingerprint string    // keyed hash of the request body's bytes (Keys.BodyFingerprint)
	Owner       string    // the send's nonce: marks this request's claim
	Now         time.Time // when the request began
	// The claim stands until LeaseUntil while the request runs; its answer
	// is kept until KeepUntil.
	LeaseUntil, KeepUntil time.Time
}

// IdempotencyHit is the error Store.Reserve returns when the key's item is
// held (not expired): nothing of the reservation was written. The service
// decides from it (Service.Send): another body is idempotency_key_reused, no
// answer yet is idempotency_key_in_progress, else the answer is replayed.
type IdempotencyHit struct {
	Fingerprint string
	Answer      *Answer // nil while the first request runs
}

func (h *IdempotencyHit) Error() string {
	if h.Answer == nil {
		return "idempotency key held by a running request"
	}
	return fmt.Sprintf("idempotency key answered %d", h.Answer.Status)
}

// IdempotencyRecord is the answer of a request that carried a key.
type IdempotencyRecord struct {
	IdempotentSend
	// Claimed: the reservation wrote the claim, so the record updates it
	// (only while this request still holds it). Otherwise the reservation
	// was refused and wrote nothing, and the record is created (only if the
	// key is free).
	Claimed bool
	Answer  Answer
}

// IdempotencyStore keeps the answers of keyed sends. The claim itself is
// written by Store.Reserve; both stores implement both interfaces.
type IdempotencyStore interface {
	// RememberAnswer records rec's answer with one write. A key that another
	// request holds meanwhile is left alone (nil error).
	RememberAnswer(ctx context.Context, rec IdempotencyRecord) error
	// ReleaseKey frees the key of a send that failed (a 5xx answer is not
	// kept, so a retry runs afresh), if that send still holds it.
	ReleaseKey(ctx context.Context, s IdempotentSend) error
}

// The refusals of a key in use.
var (
	// ErrIdempotencyKeyReused: the key came earlier with another body.
	ErrIdempotencyKeyReused = &Error{Kind: KindIdempotencyKeyReused, Description: "This Idempotency-Key was used with a different request body; use a new key for a new request"}
	// ErrIdempotencyInProgress: the first request with the key still runs.
	ErrIdempotencyInProgress = &Error{Kind: KindIdempotencyKeyInProgress, Description: "A request with this Idempotency-Key is still being processed, please retry in a moment", RetryAfter: 1}
)

// IdempotencyTicket is a keyed send's hold on its key, returned with the
// send's result so that its adapter can record the answer it renders
// (Service.RememberAnswer).
type IdempotencyTicket struct {
	send    IdempotentSend
	claimed bool
}

// validIdempotencyKey accepts 1 to 255 visible ASCII characters (0x21-0x7E):
// a key is compared byte for byte, so nothing that a proxy could rewrite
// (spaces, non-ASCII) may be in it.
func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > MaxIdempotencyKey {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotent builds the claim of a keyed send, or nil without a key.
func (s *Service) idempotent(req SendRequest, nonce string, now time.Time) *IdempotentSend {
	if req.IdempotencyKey == nil {
		return nil
	}
	return &IdempotentSend{
		ID:          s.keys.IdempotencyID(req.IP, *req.IdempotencyKey),
		Fingerprint: s.keys.BodyFingerprint(req.Body),
		Owner:       nonce,
		Now:         now,
		LeaseUntil:  now.Add(IdempotencyLease),
		KeepUntil:   now.Add(IdempotencyKeep),
	}
}

// answer is what a send gets whose key is held: the kept answer again, or
// a refusal while the first send runs or when the body is another.
func (h *IdempotencyHit) answer(claim *IdempotentSend) (*Answer, error) {
	switch {
	case h.Fingerprint != claim.Fingerprint:
		return nil, ErrIdempotencyKeyReused
	case h.Answer == nil:
		return nil, ErrIdempotencyInProgress
	}
	return h.Answer, nil
}

// RememberAnswer records the answer a keyed send got, so that a retry with
// the same key and body gets it again. 5xx answers are not kept: the send
// gave its claim back already (Service.release), and a retry runs afresh.
func (s *Service) RememberAnswer(ctx context.Context, t *IdempotencyTicket, a Answer) error {
	if t == nil || !a.Kept() {
		return nil
	}
	// A ticket exists only for a send that Send let through with its key,
	// which it does only with an idempotency store.
	return s.idempotency.RememberAnswer(ctx, IdempotencyRecord{IdempotentSend: t.send, Claimed: t.claimed, Answer: a})
}

// IdempotencyID is the storage key of a client's Idempotency-Key, scoped to
// the IP key it came from: another client cannot hit, or even probe, a key
// it did not send itself, and the table shows neither the key nor the IP.
func (k *Keys) IdempotencyID(ip, key string) string {
	var m [sha256.Size]byte
	return encode64(k.idemKey.sum(m[:0], []byte(ip), []byte(key))[:16])
}

// BodyFingerprint identifies a request body by its bytes (the same bytes
// are the same body). It is keyed: a plain hash of a body that holds a phone
// number could be reversed by trying every number.
func (k *Keys) BodyFingerprint(body []byte) string {
	var m [sha256.Size]byte
	return encode64(k.idemBody.sum(m[:0], body))
}

// Kept reports whether the answer is recorded for its key: a 5xx is not,
// and a retry runs afresh.
func (a Answer) Kept() bool { return a.Status < 500 }
