package dynamo

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/captcha"
)

// challengeItem is a cap# item as DynamoDB returns it (ALL_OLD, ALL_NEW). An
// attribute the item lacks stays zero.
type challengeItem struct {
	AnswerHash string `dynamodbav:"answer_hash"`
	Attempts   int64  `dynamodbav:"attempts"`
	ExpiresAt  int64  `dynamodbav:"expires_at"`
	UsedAt     *int64 `dynamodbav:"used_at"` // nil until solved
}

// prepareCaptcha writes the expressions of captcha challenges.
func (s *Store) prepareCaptcha() {
	// A challenge is a new item: the item must not exist yet (why, at
	// PutChallenge).
	s.absent = newExpr("", "attribute_not_exists (#pk)", "", nil)
	// The IP key's image budget: the oldest of its last CaptchaIPCap images
	// must have left the window.
	s.captchaIP = budget(s.limits.CaptchaIPCap)

	// Count first, then compare: an answer is counted while the challenge is
	// alive (unsolved, attempts left, not expired - TTL deletion lags), and
	// only a counted answer is compared, so a burst of answers has at most
	// MaxAttempts compared. A missing item fails the test, so nothing is
	// created.
	s.countSolve = newExpr("SET #attempts = #attempts + :one\n",
		and("attribute_not_exists (#used_at)", "#attempts < :max_attempts", "#expires_at > :now"), "", nil)

	// A counted right answer solves the challenge, once: a concurrent right
	// answer, counted too, may have solved it first (single use).
	s.solve = newExpr("SET #used_at = :now\n", "attribute_not_exists (#used_at)", "", nil)
}

// PutChallenge stores a new captcha challenge and spends one image of its IP
// key's budget, in one transaction.
func (s *Store) PutChallenge(ctx context.Context, c captcha.Challenge) error {
	// Ids are random; should one ever repeat, failing beats silently
	// replacing someone's live challenge (s.absent).
	put := types.TransactWriteItem{Put: &types.Put{
		TableName: s.table,
		Item: map[string]types.AttributeValue{
			attrPK:         str(prefixChallenge + c.ID),
			attrAnswerHash: str(c.AnswerHash),
			attrAttempts:   num(0),
			attrExpiresAt:  num(c.ExpiresAt.UnixMilli()),
			attrTTL:        num(ttlOf(c.ExpiresAt)),
		},
		ConditionExpression:                 s.absent.condition,
		ExpressionAttributeNames:            s.absent.names,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}
	reasons, err := s.transact(ctx, "put challenge", s.budgetItem(prefixCaptchaIP+c.IP, &s.captchaIP, c.Now), put)
	switch {
	case err != nil:
		return err
	case reasons == nil:
		return nil
	case failed(reasons[0]):
		return s.budgetRefusal(reasons[0], s.limits.CaptchaIPCap, c.Now)
	}
	return fmt.Errorf("dynamo: put challenge: the challenge id exists already")
}

// SolveChallenge counts the answer in one UpdateItem and compares it with the
// hash the counted item returns; a right answer costs a second UpdateItem,
// which solves the challenge.
func (s *Store) SolveChallenge(ctx context.Context, sv captcha.Solve) error {
	k := key(prefixChallenge + sv.ID)
	now := sv.Now.UnixMilli()
	values := s.countSolve.values(map[string]types.AttributeValue{":now": num(now), ":max_attempts": num(int64(sv.MaxAttempts))})
	var ccf *types.ConditionalCheckFailedException
	out, err := s.update(ctx, k, &s.countSolve, values, types.ReturnValueAllNew)
	switch {
	case errors.As(err, &ccf):
		var old challengeItem
		if err := attributevalue.UnmarshalMap(ccf.Item, &old); err != nil {
			return fmt.Errorf("dynamo: solve challenge: read item: %w", err)
		}
		switch {
		case ccf.Item == nil, old.ExpiresAt <= now, old.Attempts >= int64(sv.MaxAttempts):
			return captcha.ErrExpired
		case old.UsedAt != nil:
			return captcha.ErrUsed
		}
		return captcha.ErrExpired
	case err != nil:
		return storeError("solve challenge", err)
	}
	var counted challengeItem
	if err := attributevalue.UnmarshalMap(out.Attributes, &counted); err != nil {
		return fmt.Errorf("dynamo: solve challenge: read item: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(counted.AnswerHash), []byte(sv.AnswerHash)) != 1 {
		return captcha.ErrWrong
	}

	// A counted right answer: solve it, once (prepareCaptcha).
	values = s.solve.values(map[string]types.AttributeValue{":now": values[":now"]})
	_, err = s.update(ctx, k, &s.solve, values, types.ReturnValueNone)
	switch {
	case errors.As(err, &ccf):
		return captcha.ErrUsed
	case err != nil:
		return storeError("solve challenge: consume", err)
	}
	return nil
}
