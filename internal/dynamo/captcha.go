package dynamo

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
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

// prepareCaptcha builds the expressions of captcha tokens and challenges.
func (s *Store) prepareCaptcha() (err error) {
	// A challenge is a new item: the item must not exist yet (why, at
	// PutChallenge).
	if s.absent, err = prepare("put", expression.NewBuilder().
		WithCondition(expression.Name(attrPK).AttributeNotExists())); err != nil {
		return err
	}
	// The IP key's image budget: the oldest of its last CaptchaIPCap images
	// must have left the window.
	if s.captchaIP, err = prepareBudget("put challenge", s.limits.CaptchaIPCap); err != nil {
		return err
	}

	// Count first, then compare: an answer is counted while the challenge is
	// alive (unsolved, attempts left, not expired - TTL deletion lags), and
	// only a counted answer is compared, so a burst of answers has at most
	// MaxAttempts compared. A missing item fails the test, so nothing is
	// created.
	s.countSolve, err = prepare("solve challenge", expression.NewBuilder().
		WithUpdate(expression.Set(expression.Name(attrAttempts), expression.Name(attrAttempts).Plus(expression.Value(1)))).
		WithCondition(expression.And(
			expression.Name(attrUsedAt).AttributeNotExists(),
			expression.Name(attrAttempts).LessThan(arg(pMaxAttempts)),
			expression.Name(attrExpiresAt).GreaterThan(arg(pNow)),
		)),
		pNow, pMaxAttempts)
	if err != nil {
		return err
	}

	// A counted right answer solves the challenge, once: a concurrent right
	// answer, counted too, may have solved it first (single use).
	s.solve, err = prepare("solve challenge: consume", expression.NewBuilder().
		WithUpdate(expression.Set(expression.Name(attrUsedAt), arg(pNow))).
		WithCondition(expression.Name(attrUsedAt).AttributeNotExists()),
		pNow)
	return err
}

// PutChallenge stores a new captcha challenge and spends one image of its IP
// key's budget, in one transaction.
func (s *Store) PutChallenge(ctx context.Context, c captcha.Challenge) error {
	a := args{
		pNow:   num(c.Now.UnixMilli()),
		pIPCut: num(c.Now.Add(-s.limits.IPWindow).UnixMilli()),
		pIPTTL: num(ttlOf(c.Now.Add(s.limits.IPWindow))),
	}
	// Ids are random; should one ever repeat, failing beats silently
	// replacing someone's live challenge (s.absent).
	put := txItem{e: &s.absent, args: &a, put: map[string]types.AttributeValue{
		attrPK:         str(prefixChallenge + c.ID),
		attrAnswerHash: str(c.AnswerHash),
		attrAttempts:   num(0),
		attrExpiresAt:  num(c.ExpiresAt.UnixMilli()),
		attrTTL:        num(ttlOf(c.ExpiresAt)),
	}}
	reasons, err := s.transact(ctx, "put challenge", s.budgetItem(prefixCaptchaIP+c.IP, &s.captchaIP, &a), put)
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
	v := args{pNow: num(now), pMaxAttempts: num(int64(sv.MaxAttempts))}

	values, err := s.countSolve.bind(&v)
	if err != nil {
		return err
	}
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
	if values, err = s.solve.bind(&v); err != nil {
		return err
	}
	_, err = s.update(ctx, k, &s.solve, values, types.ReturnValueNone)
	switch {
	case errors.As(err, &ccf):
		return captcha.ErrUsed
	case err != nil:
		return storeError("solve challenge: consume", err)
	}
	return nil
}
