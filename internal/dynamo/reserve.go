package dynamo

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/verification"
)

// tokenGrace keeps a consumed captcha token's record a little past the
// token's own expiry, so that a Lambda instance whose clock runs slightly
// behind cannot accept the token again after TTL deleted its record.
const tokenGrace = 5 * time.Minute

// reserve is one send's transaction and where its items sit in it.
type reserve struct {
	in      *dynamodb.TransactWriteItemsInput
	tokenAt int // index of the captcha token's Put, -1 without one
	userAt  int // index of the users-table ConditionCheck, -1 for ANY

	// The IP item's update and budget condition, for refuse.
	ipUpdate expression.UpdateBuilder
	ipBudget expression.ConditionBuilder
}

// Positions of the first two items, fixed.
const (
	ipAt     = 0
	targetAt = 1
)

// Reserve commits r in one TransactWriteItems, or names the refusal from
// the old items DynamoDB returns with the cancellation (SPEC §3.4a order,
// through Limits.Judge and Judgement.Refusal). A refusal by the user check
// costs one more UpdateItem: it spends the IP's budget.
func (s *Store) Reserve(ctx context.Context, r verification.Reservation) error {
	tx, err := s.reserveTx(r)
	if err != nil {
		return err
	}
	err = retryConflicts(ctx, func() error {
		_, err := s.db.TransactWriteItems(ctx, tx.in)
		return err
	})
	if err == nil {
		return nil
	}
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return storeError("reserve", err)
	}
	if err := canceledError("reserve", tce); err != nil {
		return err
	}
	if len(tce.CancellationReasons) != len(tx.in.TransactItems) {
		return storeError("reserve: reasons do not match the items", err)
	}
	return s.refuse(ctx, r, tx, tce.CancellationReasons)
}

func (s *Store) reserveTx(r verification.Reservation) (reserve, error) {
	l := s.limits
	now := r.Now.UnixMilli()
	ipCut := now - l.IPWindow.Milliseconds()
	dayCut := now - l.TargetWindow.Milliseconds()
	gated := r.CaptchaID == "" // a captcha token lifts the gate
	tx := reserve{tokenAt: -1, userAt: -1}

	// The IP's rolling budget: the oldest of its last IPCap sends must have
	// left the window. Without a captcha token, the gate also asks that the
	// CaptchaIPGate-th newest send left it (else the send looks abnormal).
	tx.ipUpdate = s.ipSlots.shift(expression.UpdateBuilder{}, now).
		Set(expression.Name(attrTTL), expression.Value(ttlOf(r.Now.Add(l.IPWindow))))
	tx.ipBudget = s.ipSlots.olderThan(0, ipCut)
	ipCond := tx.ipBudget
	if g := l.CaptchaIPGate; gated && g > 0 && g <= l.IPCap {
		ipCond = ipCond.And(s.ipSlots.olderThan(l.IPCap-g, ipCut))
	}
	ip, err := build("reserve", expression.NewBuilder().WithUpdate(tx.ipUpdate).WithCondition(ipCond))
	if err != nil {
		return tx, err
	}

	// The target's cooldown (its newest send is at least Cooldown old) and
	// daily cap (the oldest of its last TargetCap sends left the 24 h window);
	// without a captcha token also the gate (the CaptchaTgtGate-th newest
	// send left the window). The new code replaces the old one on the same
	// item, which is what supersedes it; used_at goes, attempts restart.
	n := l.TargetCap
	tgtUpdate := s.tgtSlots.shift(expression.UpdateBuilder{}, now).
		Set(expression.Name(attrNonce), expression.Value(r.Nonce)).
		Set(expression.Name(attrCodeHash), expression.Value(r.CodeHash)).
		Set(expression.Name(attrAttempts), expression.Value(0)).
		Set(expression.Name(attrExpiresAt), expression.Value(r.ExpiresAt.UnixMilli())).
		Set(expression.Name(attrIdentity), expression.Value(r.Identity)).
		Set(expression.Name(attrChannel), expression.Value(string(r.Channel))).
		Set(expression.Name(attrTarget), expression.Value(string(r.Target))).
		Set(expression.Name(attrTTL), expression.Value(ttlOf(latest(r.Now.Add(l.TargetWindow), r.Now.Add(l.Cooldown), r.ExpiresAt)))).
		Remove(expression.Name(attrUsedAt))
	tgtCond := s.tgtSlots.olderThan(n-1, now-l.Cooldown.Milliseconds()).And(s.tgtSlots.olderThan(0, dayCut))
	if g := l.CaptchaTgtGate; gated && g > 0 && g <= n {
		tgtCond = tgtCond.And(s.tgtSlots.olderThan(n-g, dayCut))
	}
	tgt, err := build("reserve", expression.NewBuilder().WithUpdate(tgtUpdate).WithCondition(tgtCond))
	if err != nil {
		return tx, err
	}

	items := []types.TransactWriteItem{
		{Update: &types.Update{
			TableName:                           aws.String(s.table),
			Key:                                 key(prefixIP + r.IP),
			UpdateExpression:                    ip.Update(),
			ConditionExpression:                 ip.Condition(),
			ExpressionAttributeNames:            ip.Names(),
			ExpressionAttributeValues:           ip.Values(),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
		{Update: &types.Update{
			TableName:                           aws.String(s.table),
			Key:                                 key(prefixTarget + r.Handle),
			UpdateExpression:                    tgt.Update(),
			ConditionExpression:                 tgt.Condition(),
			ExpressionAttributeNames:            tgt.Names(),
			ExpressionAttributeValues:           tgt.Values(),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
	}

	if r.CaptchaID != "" {
		// A captcha token is single-use: its record must not exist yet. The
		// record lives as long as the token could still pass Check; an
		// expired token is refused before it gets here, so a lingering
		// record of one needs no expiry test.
		cond, err := build("reserve", expression.NewBuilder().
			WithCondition(expression.Name(attrPK).AttributeNotExists()))
		if err != nil {
			return tx, err
		}
		tx.tokenAt = len(items)
		items = append(items, types.TransactWriteItem{Put: &types.Put{
			TableName: aws.String(s.table),
			Item: map[string]types.AttributeValue{
				attrPK:  str(prefixToken + r.CaptchaID),
				attrTTL: num(ttlOf(latest(r.CaptchaExp, r.Now).Add(tokenGrace))),
			},
			ConditionExpression:                 cond.Condition(),
			ExpressionAttributeNames:            cond.Names(),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}})
	}

	if r.Require != verification.RequireNothing {
		// USER needs the user item to exist, NOT_USER needs it absent. The
		// check is in the transaction, so no send can slip between a lookup
		// and the reservation.
		user := expression.Name(attrIdentity).AttributeExists()
		if r.Require == verification.RequireNoUser {
			user = expression.Name(attrIdentity).AttributeNotExists()
		}
		cond, err := build("reserve", expression.NewBuilder().WithCondition(user))
		if err != nil {
			return tx, err
		}
		tx.userAt = len(items)
		items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName:                           aws.String(s.users),
			Key:                                 map[string]types.AttributeValue{attrIdentity: str(r.Identity)},
			ConditionExpression:                 cond.Condition(),
			ExpressionAttributeNames:            cond.Names(),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}})
	}
	tx.in = &dynamodb.TransactWriteItemsInput{TransactItems: items}
	return tx, nil
}

// refuse names the refusal of a cancelled reservation from its reasons. An
// item that did not fail its condition comes back without its old image;
// reading it as "no events" is equivalent, because its condition says
// exactly what Judge would check on it.
func (s *Store) refuse(ctx context.Context, r verification.Reservation, tx reserve, reasons []types.CancellationReason) error {
	ip := slotsOf(reasons[ipAt].Item, ipSlot, s.limits.IPCap)
	tgt := slotsOf(reasons[targetAt].Item, targetSlot, s.limits.TargetCap)
	captchaGiven := r.CaptchaID != ""
	captchaUsed := tx.tokenAt >= 0 && failed(reasons[tx.tokenAt])
	var userRefusal error
	if tx.userAt >= 0 && failed(reasons[tx.userAt]) {
		userRefusal = verification.ErrUserNotFound
		if r.Require == verification.RequireNoUser {
			userRefusal = verification.ErrUserExists
		}
	}
	refusal, spendIP := s.limits.Judge(ip, tgt, r.Now).Refusal(captchaGiven, captchaUsed, userRefusal)
	if refusal == nil {
		// A condition failed, yet the returned items break no rule: the
		// clock moved across a boundary between the two views. Never turn a
		// refusal into an accepted send; a one-second wait settles it.
		return verification.RateLimited(1)
	}
	if !spendIP {
		return refusal
	}

	// The user check refused, and that still spends the IP's budget
	// (SPEC §3.3), so the endpoint cannot enumerate accounts for free. The
	// same shift as in the transaction, with the budget as its only
	// condition: the gate already passed (or the refusal would have been
	// captcha_required).
	spend, err := build("reserve: spend ip budget", expression.NewBuilder().
		WithUpdate(tx.ipUpdate).
		WithCondition(tx.ipBudget)) // the budget may have been spent meanwhile
	if err != nil {
		return err
	}
	var ccf *types.ConditionalCheckFailedException
	_, err = s.update(ctx, key(prefixIP+r.IP), spend, types.ReturnValueNone)
	switch {
	case err == nil:
		return refusal
	case errors.As(err, &ccf):
		// Concurrent sends spent the budget between the two calls: the send
		// is now refused for the IP, which SPEC §3.4a puts first.
		ip = slotsOf(ccf.Item, ipSlot, s.limits.IPCap)
		again, _ := s.limits.Judge(ip, tgt, r.Now).Refusal(captchaGiven, captchaUsed, userRefusal)
		if verification.KindOf(again) == verification.KindRateLimitExceeded {
			return again
		}
		return verification.RateLimited(1)
	default:
		return storeError("reserve: spend ip budget", err)
	}
}

// Release removes r's code and gives back the cooldown and cap slot it took,
// unless a newer send already replaced the code. The IP's budget stays spent.
func (s *Store) Release(ctx context.Context, r verification.Reservation) error {
	// Only the reservation that is still the target's current one may be
	// undone: a newer send owns the item (and its newest slot) now.
	undo, err := build("release", expression.NewBuilder().
		WithUpdate(s.tgtSlots.unshift(expression.UpdateBuilder{}).
			Remove(expression.Name(attrNonce)).
			Remove(expression.Name(attrCodeHash)).
			Remove(expression.Name(attrAttempts)).
			Remove(expression.Name(attrExpiresAt)).
			Remove(expression.Name(attrUsedAt)).
			Remove(expression.Name(attrIdentity)).
			Remove(expression.Name(attrChannel)).
			Remove(expression.Name(attrTarget))).
		WithCondition(expression.Name(attrNonce).Equal(expression.Value(r.Nonce))))
	if err != nil {
		return err
	}
	var ccf *types.ConditionalCheckFailedException
	_, err = s.update(ctx, key(prefixTarget+r.Handle), undo, types.ReturnValueNone)
	if err == nil || errors.As(err, &ccf) {
		return nil
	}
	return storeError("release", err)
}

func latest(t time.Time, more ...time.Time) time.Time {
	for _, u := range more {
		if u.After(t) {
			t = u
		}
	}
	return t
}
