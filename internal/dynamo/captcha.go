package dynamo

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/captcha"
)

// challengeItem is a cap# item as DynamoDB returns it (ALL_OLD). An
// attribute the item lacks stays zero.
type challengeItem struct {
	AnswerHash string `dynamodbav:"answer_hash"`
	Attempts   int64  `dynamodbav:"attempts"`
	ExpiresAt  int64  `dynamodbav:"expires_at"`
	UsedAt     *int64 `dynamodbav:"used_at"` // nil until solved
}

// prepareCaptcha builds the expressions of captcha tokens and challenges.
func (s *Store) prepareCaptcha() (err error) {
	// A captcha token's record and a challenge are new items: the item must
	// not exist yet (why, at PutChallenge and in reserveTx).
	if s.absent, err = prepare("put", expression.NewBuilder().
		WithCondition(expression.Name(attrPK).AttributeNotExists())); err != nil {
		return err
	}

	// Right answer, unused (single use, also under concurrent solves),
	// attempts left and not expired (TTL deletion lags). A missing item
	// fails the hash test, so nothing is created.
	alive := expression.And(
		expression.Name(attrUsedAt).AttributeNotExists(),
		expression.Name(attrAttempts).LessThan(arg(pMaxAttempts)),
		expression.Name(attrExpiresAt).GreaterThan(arg(pNow)),
	)
	if s.solve, err = prepare("solve challenge", expression.NewBuilder().
		WithUpdate(expression.Set(expression.Name(attrUsedAt), arg(pNow))).
		WithCondition(expression.Name(attrAnswerHash).Equal(arg(pAnswerHash)).And(alive)),
		pNow, pMaxAttempts, pAnswerHash); err != nil {
		return err
	}

	// A wrong answer counts an attempt, only while the challenge is alive
	// (a concurrent guess may have used the last one, or a right answer
	// solved it), so the count never passes MaxAttempts.
	s.countSolve, err = prepare("solve challenge: count attempt", expression.NewBuilder().
		WithUpdate(expression.Set(expression.Name(attrAttempts), expression.Name(attrAttempts).Plus(expression.Value(1)))).
		WithCondition(alive),
		pNow, pMaxAttempts)
	return err
}

// PutChallenge stores a new captcha challenge.
func (s *Store) PutChallenge(ctx context.Context, c captcha.Challenge) error {
	// Ids are random; should one ever repeat, failing beats silently
	// replacing someone's live challenge (s.absent).
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: s.table,
		Item: map[string]types.AttributeValue{
			attrPK:         str(prefixChallenge + c.ID),
			attrAnswerHash: str(c.AnswerHash),
			attrAttempts:   num(0),
			attrExpiresAt:  num(c.ExpiresAt.UnixMilli()),
			attrTTL:        num(ttlOf(c.ExpiresAt)),
		},
		ConditionExpression:      s.absent.condition,
		ExpressionAttributeNames: s.absent.names,
	})
	if err != nil {
		return storeError("put challenge", err)
	}
	return nil
}

// SolveChallenge marks the challenge solved in one UpdateItem when the answer
// is right; a wrong answer costs a second one that counts the attempt.
func (s *Store) SolveChallenge(ctx context.Context, sv captcha.Solve) error {
	k := key(prefixChallenge + sv.ID)
	now := sv.Now.UnixMilli()
	v := args{pNow: num(now), pMaxAttempts: num(int64(sv.MaxAttempts)), pAnswerHash: str(sv.AnswerHash)}

	// Right answer, unused, attempts left and not expired (prepareCaptcha).
	values, err := s.solve.bind(&v)
	if err != nil {
		return err
	}
	var ccf *types.ConditionalCheckFailedException
	_, err = s.update(ctx, k, &s.solve, values, types.ReturnValueNone)
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &ccf):
		return storeError("solve challenge", err)
	}

	var old challengeItem
	if err := attributevalue.UnmarshalMap(ccf.Item, &old); err != nil {
		return fmt.Errorf("dynamo: solve challenge: read item: %w", err)
	}
	switch {
	case ccf.Item == nil,
		old.ExpiresAt <= now,
		old.Attempts >= int64(sv.MaxAttempts):
		return captcha.ErrExpired
	case old.UsedAt != nil:
		return captcha.ErrUsed
	case subtle.ConstantTimeCompare([]byte(old.AnswerHash), []byte(sv.AnswerHash)) == 1:
		return captcha.ErrExpired // cannot happen: every other part held
	}

	// A wrong answer counts an attempt, only while the challenge is alive
	// (prepareCaptcha), so the count never passes MaxAttempts.
	values, err = s.countSolve.bind(&v)
	if err != nil {
		return err
	}
	_, err = s.update(ctx, k, &s.countSolve, values, types.ReturnValueNone)
	switch {
	case errors.As(err, &ccf):
		return captcha.ErrExpired
	case err != nil:
		return storeError("solve challenge: count attempt", err)
	}
	return captcha.ErrWrong
}
