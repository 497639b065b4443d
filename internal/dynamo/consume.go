package dynamo

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
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

// prepareConsume builds the expressions of a verify.
func (s *Store) prepareConsume() (err error) {
	// The code must be the target's current one (a newer send replaces the
	// nonce), the hash must match, and it must be alive: attempts left, not
	// expired (TTL deletion lags, so expiry is checked here) and not used.
	// Setting used_at in the same write makes it single-use, also under
	// concurrent verifies. A missing item fails the nonce test, so nothing
	// is created.
	alive := expression.And(
		expression.Name(attrNonce).Equal(arg(pNonce)),
		expression.Name(attrAttempts).LessThan(arg(pMaxAttempts)),
		expression.Name(attrExpiresAt).GreaterThan(arg(pNow)),
		expression.Name(attrUsedAt).AttributeNotExists(),
	)
	if s.consume, err = prepare("consume", expression.NewBuilder().
		WithUpdate(expression.Set(expression.Name(attrUsedAt), arg(pNow))).
		WithCondition(alive.And(expression.Name(attrCodeHash).Equal(arg(pCodeHash)))),
		pNow, pNonce, pMaxAttempts, pCodeHash); err != nil {
		return err
	}

	// A wrong code counts an attempt. The code must still be alive, checked
	// again because a concurrent guess may have used the last attempt (or a
	// right code spent it) since the first write; so the count never passes
	// MaxAttempts.
	s.countAttempt, err = prepare("consume: count attempt", expression.NewBuilder().
		WithUpdate(expression.Set(expression.Name(attrAttempts), expression.Name(attrAttempts).Plus(expression.Value(1)))).
		WithCondition(alive),
		pNow, pNonce, pMaxAttempts)
	return err
}

// Consume spends a right code in one UpdateItem. A wrong code costs a second
// one, which counts the attempt under a condition, so concurrent wrong guesses
// can never count more than MaxAttempts.
func (s *Store) Consume(ctx context.Context, a verification.Attempt) (verification.Record, error) {
	k := key(prefixTarget + a.Handle)
	now := a.Now.UnixMilli()
	v := args{pNow: num(now), pNonce: str(a.Nonce), pMaxAttempts: num(int64(a.MaxAttempts)), pCodeHash: str(a.CodeHash)}

	// The right code of the target's current, live code (prepareConsume),
	// spent in the same write.
	values, err := s.consume.bind(&v)
	if err != nil {
		return verification.Record{}, err
	}
	out, err := s.update(ctx, k, &s.consume, values, types.ReturnValueAllNew)
	var ccf *types.ConditionalCheckFailedException
	switch {
	case err == nil:
		spent, err := decodeCode("consume", out.Attributes)
		if err != nil {
			return verification.Record{}, err
		}
		return verification.Record{Identity: spent.Identity, Channel: spent.Channel, Target: spent.Target}, nil
	case !errors.As(err, &ccf):
		return verification.Record{}, storeError("consume", err)
	}

	// Which part failed? The old item says, with no extra read.
	old, err := decodeCode("consume", ccf.Item)
	if err != nil {
		return verification.Record{}, err
	}
	if ccf.Item == nil ||
		subtle.ConstantTimeCompare([]byte(old.Nonce), []byte(a.Nonce)) != 1 ||
		old.UsedAt != nil ||
		old.ExpiresAt <= now ||
		old.Attempts >= int64(a.MaxAttempts) ||
		subtle.ConstantTimeCompare([]byte(old.CodeHash), []byte(a.CodeHash)) == 1 {
		return verification.Record{}, verification.ErrExpired
	}

	// Only the hash was wrong: count the attempt, while the code is still
	// alive (prepareConsume), so the count never passes MaxAttempts.
	values, err = s.countAttempt.bind(&v)
	if err != nil {
		return verification.Record{}, err
	}
	out, err = s.update(ctx, k, &s.countAttempt, values, types.ReturnValueUpdatedNew)
	switch {
	case errors.As(err, &ccf):
		return verification.Record{}, verification.ErrExpired
	case err != nil:
		return verification.Record{}, storeError("consume: count attempt", err)
	}
	counted, err := decodeCode("consume: count attempt", out.Attributes)
	if err != nil {
		return verification.Record{}, err
	}
	if left := int64(a.MaxAttempts) - counted.Attempts; left > 0 {
		return verification.Record{}, verification.WrongCode(int(left))
	}
	sentAt := time.UnixMilli(old.ExpiresAt).Add(-s.limits.CodeTTL)
	return verification.Record{}, s.limits.TooManyAttempts(sentAt, a.Now)
}
