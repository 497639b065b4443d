package dynamo

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/verification"
)

// codeItem is the code part of a tgt# item, as DynamoDB returns it (ALL_NEW,
// ALL_OLD or UPDATED_NEW). An attribute the item lacks stays zero.
type codeItem struct {
	Nonce     string               `dynamodbav:"nonce"`
	CodeHash  string               `dynamodbav:"code_hash"`
	Attempts  int64                `dynamodbav:"attempts"`
	ExpiresAt int64                `dynamodbav:"expires_at"`
	UsedAt    *int64               `dynamodbav:"used_at"` // nil until used
	Identity  string               `dynamodbav:"identity"`
	Channel   verification.Channel `dynamodbav:"channel"`
	Target    verification.Target  `dynamodbav:"target"`
}

// decodeCode reads item into a codeItem. It fails only on an item this
// store did not write.
func decodeCode(op string, item map[string]types.AttributeValue) (codeItem, error) {
	var c codeItem
	if err := attributevalue.UnmarshalMap(item, &c); err != nil {
		return c, fmt.Errorf("dynamo: %s: read item: %w", op, err)
	}
	return c, nil
}

// prepareConsume writes the expressions of a verify.
func (s *Store) prepareConsume() {
	// A verify first reads the code (strongly consistent, only the code's
	// attributes), so that the one transaction that follows can both count
	// the guess and, for a right code, spend it.
	s.readCode = newExpr("", "", "#nonce, #code_hash, #attempts, #expires_at, #used_at, #identity, #channel, #target", nil)

	// The IP key's verify budget: the oldest of its last VerifyIPCap
	// verifies must have left the window.
	s.verifyIP = budget(s.limits.VerifyIPCap)

	// Count first, then compare. The count is the write that decides: the
	// code must still be the target's current one (a newer send replaces the
	// nonce), alive (not used, not expired - TTL deletion lags - attempts
	// left), and still hold exactly the attempts the read saw (:seen). That
	// last clause makes the comparison made on the read count only through
	// this write: a concurrent guess that counted in between fails it, and
	// the guess is judged again on the item as it is now. So at most
	// MaxAttempts guesses are ever answered from a comparison, however many
	// arrive at once, and each answer's attempts remaining is exact. A right
	// code is spent in the same write (used_at), so it is single-use too.
	alive := and("#nonce = :nonce", "#attempts = :seen", "#attempts < :max_attempts", "#expires_at > :now",
		"attribute_not_exists (#used_at)")
	s.countWrong = newExpr("SET #attempts = #attempts + :one\n", alive, "", nil)
	s.countRight = newExpr("SET #attempts = #attempts + :one, #used_at = :now\n", alive, "", nil)
}

// budget is the update of a rolling per-IP budget of n events per hour
// (IPWindow): the oldest of the last n events must have left the window.
func budget(n int) expr {
	return newExpr("SET "+shift(ipSlot, n)+", #ttl = :ttl\n", olderThan(ipSlot, 0, ":ip_cut"), "", nil)
}

// Consume checks a guess in two round trips, right or wrong: a strongly
// consistent read of the code, then one transaction that spends the IP key's
// verify budget and counts the guess (and spends a right code) under the
// condition that the code is exactly as read (prepareConsume). A dead code is
// answered from the read alone.
func (s *Store) Consume(ctx context.Context, a verification.Attempt) (verification.Record, error) {
	k := key(prefixTarget + a.Handle)
	read := func() (map[string]types.AttributeValue, error) {
		out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName:                s.table,
			Key:                      k,
			ProjectionExpression:     s.readCode.projection,
			ExpressionAttributeNames: s.readCode.names,
			ConsistentRead:           aws.Bool(true),
		})
		if err != nil {
			return nil, storeError("consume: read", err)
		}
		return out.Item, nil
	}
	item, err := read()
	if err != nil {
		return verification.Record{}, err
	}
	now := a.Now.UnixMilli()
	avNow, avNonce, avMax := num(now), str(a.Nonce), num(int64(a.MaxAttempts))
	spend := s.budgetItem(prefixVerifyIP+a.IP, &s.verifyIP, a.Now)
	// Each round answers, or sees the count of a concurrent guess (a code
	// takes at most MaxAttempts), or lost a burst of conflicts more than once
	// in a row: the bound keeps a pathological burst from looping long; past
	// it the guess fails closed, uncounted.
	for range 2*a.MaxAttempts + 2 {
		c, err := decodeCode("consume", item)
		if err != nil {
			return verification.Record{}, err
		}
		if item == nil ||
			subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(a.Nonce)) != 1 ||
			c.UsedAt != nil || c.ExpiresAt <= now || c.Attempts >= int64(a.MaxAttempts) {
			return verification.Record{}, verification.ErrExpired
		}
		// Compared in constant time; the result counts only if the
		// transaction below commits, i.e. only for a counted guess.
		right := subtle.ConstantTimeCompare([]byte(c.CodeHash), []byte(a.CodeHash)) == 1
		count := &s.countWrong
		if right {
			count = &s.countRight
		}
		items := []types.TransactWriteItem{spend, s.updateItem(k, count, count.values(map[string]types.AttributeValue{
			":now": avNow, ":nonce": avNonce, ":seen": num(c.Attempts), ":max_attempts": avMax,
		}))}
		if right {
			// A right SMS code counts as verified for its prefix in the
			// same write (pumping.go); it has no condition, so it never
			// names a refusal.
			if it, ok := s.verifiedItem(c.Identity, c.Channel, a.Now); ok {
				items = append(items, it)
			}
		}
		reasons, err := s.transact(ctx, "consume", items...)
		switch {
		case err != nil && conflicted(err):
			// Concurrent guesses kept colliding with this one's
			// transaction (a burst at one code): nothing was written, so
			// read the code again and judge the guess on it.
			if item, err = read(); err != nil {
				return verification.Record{}, err
			}
		case err != nil:
			return verification.Record{}, err
		case reasons == nil && right:
			return verification.Record{Identity: c.Identity, Channel: c.Channel, Target: c.Target}, nil
		case reasons == nil:
			if left := int64(a.MaxAttempts) - (c.Attempts + 1); left > 0 {
				return verification.Record{}, verification.WrongCode(int(left))
			}
			sentAt := time.UnixMilli(c.ExpiresAt).Add(-s.limits.CodeTTL)
			return verification.Record{}, s.limits.TooManyAttempts(sentAt, a.Now)
		case failed(reasons[1]):
			// The code changed since the read (a concurrent guess
			// counted, a right code spent it, a newer send replaced it):
			// judge the guess again on the item as it is now.
			item = reasons[1].Item
		default:
			return verification.Record{}, s.budgetRefusal(reasons[0], s.limits.VerifyIPCap, a.Now)
		}
	}
	return verification.Record{}, storeError("consume", verification.ErrUnavailable)
}

// budgetRefusal names the refusal of a per-IP budget of n per IPWindow from
// the old item of its failed update: rate_limit_exceeded until the oldest of
// the last n events leaves the window.
func (s *Store) budgetRefusal(r types.CancellationReason, n int, now time.Time) error {
	if w := slotsOf(r.Item, ipSlot, n).Wait(n, s.limits.IPWindow, now); w > 0 {
		return verification.RequestsLimitedFor(w)
	}
	// The condition failed, yet the item breaks no rule: the clock moved
	// across the boundary. A one-second wait settles it.
	return verification.RequestsLimited(1)
}

// budgetItem is the update of the rolling per-IP budget e (budget) on the
// item pk at now, for a transaction.
func (s *Store) budgetItem(pk string, e *expr, now time.Time) types.TransactWriteItem {
	ms := now.UnixMilli()
	return s.updateItem(key(pk), e, e.values(map[string]types.AttributeValue{
		":now":    num(ms),
		":ip_cut": num(ms - s.limits.IPWindow.Milliseconds()),
		":ttl":    num(ttlOf(now.Add(s.limits.IPWindow))),
	}))
}

// updateItem is the update e with values on the item k, for a transaction.
func (s *Store) updateItem(k map[string]types.AttributeValue, e *expr, values map[string]types.AttributeValue) types.TransactWriteItem {
	return types.TransactWriteItem{Update: &types.Update{
		TableName:                           s.table,
		Key:                                 k,
		UpdateExpression:                    e.update,
		ConditionExpression:                 e.condition,
		ExpressionAttributeNames:            e.names,
		ExpressionAttributeValues:           values,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}
}

// transact runs one TransactWriteItems of items on the verification table,
// retrying conflicts. It returns nil reasons when it committed, the
// cancellation reasons (with old items) when only conditions failed, or an
// error.
func (s *Store) transact(ctx context.Context, op string, items ...types.TransactWriteItem) ([]types.CancellationReason, error) {
	in := &dynamodb.TransactWriteItemsInput{TransactItems: items}
	err := retryConflicts(ctx, func() error {
		_, err := s.db.TransactWriteItems(ctx, in)
		return err
	})
	if err == nil {
		return nil, nil
	}
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return nil, storeError(op, err)
	}
	if err := canceledError(op, tce); err != nil {
		return nil, err
	}
	if len(tce.CancellationReasons) != len(items) {
		return nil, storeError(op+": reasons do not match the items", err)
	}
	return tce.CancellationReasons, nil
}
