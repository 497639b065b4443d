package dynamo

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/verification"
)

// Idempotency keys (verification.IdempotencyStore). A keyed send claims its
// key with one more Put in its own reservation transaction, so the claim
// costs no round trip and two concurrent sends with one key cannot both
// commit; a held key cancels the transaction, and the key's old item, which
// DynamoDB returns with the cancellation (ALL_OLD), carries the stored answer:
// a replay is that one round trip. The answer is recorded with one more write.
//
//	idem#<id>  fp (body fingerprint), owner (the claiming send's nonce),
//	           expires_at (ms: the lease while running, the keep time once
//	           answered), answer_status, answer_body (B), answer_retry
//	           (once answered), ttl
//
// Its expressions depend on no limit, so they are made once for the package
// rather than in New (expr.go).

const (
	prefixIdempotency = "idem#"

	attrFingerprint  = "fp"
	attrOwner        = "owner"
	attrAnswerStatus = "answer_status"
	attrAnswerBody   = "answer_body"
	attrAnswerRetry  = "answer_retry"
)

var _ verification.IdempotencyStore = (*Store)(nil)

var (
	// The key is free when it has no item, or when its item expired (a
	// claim whose lease ended, an answer past its keep time, or a released
	// claim): TTL deletes lazily, so the condition checks expiry itself.
	idemFree = newExpr("", "attribute_not_exists(#pk) OR #expires_at <= :now", "", nil)

	// Only the request that still holds the claim may answer or release it:
	// after its lease ended another request may own the key.
	idemAnswer = newExpr("SET #answer_status = :status, #answer_body = :body, #answer_retry = :retry, #expires_at = :keep, #ttl = :ttl",
		"#owner = :owner", "", nil)

	// A released claim expires at once (zero, not now, so that an instance
	// whose clock runs behind sees it free too).
	idemRelease = newExpr("SET #expires_at = :zero", "#owner = :owner", "", nil)
)

// appendIdempotency adds the claim of r's key, if it has one, as the last
// item of its reservation transaction.
func (s *Store) appendIdempotency(items []types.TransactWriteItem, r verification.Reservation) []types.TransactWriteItem {
	c := r.Idempotency
	if c == nil {
		return items
	}
	return append(items, types.TransactWriteItem{Put: &types.Put{
		TableName: s.table,
		Item: map[string]types.AttributeValue{
			attrPK:          str(prefixIdempotency + c.ID),
			attrFingerprint: str(c.Fingerprint),
			attrOwner:       str(c.Owner),
			attrExpiresAt:   num(c.LeaseUntil.UnixMilli()),
			attrTTL:         num(ttlOf(c.LeaseUntil)),
		},
		ConditionExpression:                 idemFree.condition,
		ExpressionAttributeNames:            idemFree.names,
		ExpressionAttributeValues:           map[string]types.AttributeValue{":now": num(r.Now.UnixMilli())},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}})
}

// idempotencyHit reads a cancelled reservation: when r's key claim (the last
// item) failed, the key is held, and that decides the answer whatever else
// failed. It returns nil when the key was free.
func idempotencyHit(r verification.Reservation, reasons []types.CancellationReason) error {
	if r.Idempotency == nil || len(reasons) == 0 || !failed(reasons[len(reasons)-1]) {
		return nil
	}
	return hitOf(reasons[len(reasons)-1].Item)
}

// hitOf is the state of a held key from its item.
func hitOf(item map[string]types.AttributeValue) *verification.IdempotencyHit {
	h := &verification.IdempotencyHit{}
	if v, ok := item[attrFingerprint].(*types.AttributeValueMemberS); ok {
		h.Fingerprint = v.Value
	}
	if _, answered := item[attrAnswerStatus]; answered {
		a := &verification.Answer{Status: int(numOf(item, attrAnswerStatus)), RetryAfter: int(numOf(item, attrAnswerRetry))}
		if v, ok := item[attrAnswerBody].(*types.AttributeValueMemberB); ok {
			a.Body = v.Value
		}
		h.Answer = a
	}
	return h
}

// RememberAnswer records a keyed send's answer with one write: an update of
// its own claim, or, for a refused send (whose transaction wrote nothing),
// a Put on the key if it is still free.
func (s *Store) RememberAnswer(ctx context.Context, rec verification.IdempotencyRecord) error {
	values := map[string]types.AttributeValue{
		":status": num(int64(rec.Answer.Status)),
		":body":   &types.AttributeValueMemberB{Value: rec.Answer.Body},
		":retry":  num(int64(rec.Answer.RetryAfter)),
		":keep":   num(rec.KeepUntil.UnixMilli()),
		":ttl":    num(ttlOf(rec.KeepUntil)),
	}
	var err error
	if rec.Claimed {
		values[":owner"] = str(rec.Owner)
		err = s.updateOwnedKey(ctx, rec.ID, &idemAnswer, values)
	} else {
		err = retryConflicts(ctx, func() error {
			_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
				TableName: s.table,
				Item: map[string]types.AttributeValue{
					attrPK:           str(prefixIdempotency + rec.ID),
					attrFingerprint:  str(rec.Fingerprint),
					attrOwner:        str(rec.Owner),
					attrExpiresAt:    values[":keep"],
					attrTTL:          values[":ttl"],
					attrAnswerStatus: values[":status"],
					attrAnswerBody:   values[":body"],
					attrAnswerRetry:  values[":retry"],
				},
				ConditionExpression:       idemFree.condition,
				ExpressionAttributeNames:  idemFree.names,
				ExpressionAttributeValues: map[string]types.AttributeValue{":now": num(rec.Now.UnixMilli())},
			})
			return err
		})
	}
	var ccf *types.ConditionalCheckFailedException
	if err == nil || errors.As(err, &ccf) {
		return nil // held by another request meanwhile: its answer stands
	}
	return storeError("idempotency: remember", err)
}

// ReleaseKey frees the key of a failed send that still holds it.
func (s *Store) ReleaseKey(ctx context.Context, c verification.IdempotentSend) error {
	err := s.updateOwnedKey(ctx, c.ID, &idemRelease, map[string]types.AttributeValue{":owner": str(c.Owner)})
	var ccf *types.ConditionalCheckFailedException
	if err == nil || errors.As(err, &ccf) {
		return nil
	}
	return storeError("idempotency: release", err)
}

// updateOwnedKey runs e (an update under the condition that the send that
// claimed the key, values[":owner"], still holds it) on the key id's item.
func (s *Store) updateOwnedKey(ctx context.Context, id string, e *expr, values map[string]types.AttributeValue) error {
	return retryConflicts(ctx, func() error {
		_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 s.table,
			Key:                       key(prefixIdempotency + id),
			UpdateExpression:          e.update,
			ConditionExpression:       e.condition,
			ExpressionAttributeNames:  e.names,
			ExpressionAttributeValues: e.values(values),
		})
		return err
	})
}
