package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/verification"
)

// tokenGrace keeps a captcha token's record of spent uses a little past the
// token's own expiry, so that a Lambda instance whose clock runs slightly
// behind cannot accept the token afresh after TTL deleted its record.
const tokenGrace = 5 * time.Minute

// reserve is one send's transaction and where its items sit in it.
type reserve struct {
	in      *dynamodb.TransactWriteItemsInput
	tokenAt int  // index of the captcha token's Put, -1 without one
	userAt  int  // index of the users-table ConditionCheck, -1 for ANY
	args    args // the request's values, for the IP spend of refuse

	pump pumpAt // where the SMS pumping items sit (pumping.go)
}

// Positions of the first two items, fixed.
const (
	ipAt     = 0
	targetAt = 1
)

// Reserve commits r in one TransactWriteItems, or names the refusal from
// the old items DynamoDB returns with the cancellation (SPEC §3.4a order,
// through Limits.Judge and Judgement.Refusal). A refusal by the user check
// costs one more UpdateItem: it spends the IP's budget, under the captcha
// gate too. An ANY send reads its user item (Exists) beside the
// transaction, so the answer costs no extra wait; Reserve waits for both.
func (s *Store) Reserve(ctx context.Context, r verification.Reservation) (isUser bool, err error) {
	tx, err := s.reserveTx(r)
	if err != nil {
		return false, err
	}
	var lookup chan error
	switch r.Require {
	case verification.RequireUser:
		isUser = true
	case verification.RequireNothing:
		lookup = make(chan error, 1)
		go func() {
			var err error
			isUser, err = s.Exists(ctx, r.Identity)
			lookup <- err
		}()
	}
	err = s.commit(ctx, r, tx)
	if lookup != nil {
		if lookupErr := <-lookup; err == nil && lookupErr != nil {
			return false, fmt.Errorf("%w: %w", verification.ErrUserLookup, lookupErr)
		}
	}
	if err != nil {
		return false, err
	}
	return isUser, nil
}

// commit runs the transaction of tx and names its refusal.
func (s *Store) commit(ctx context.Context, r verification.Reservation, tx reserve) error {
	err := retryConflicts(ctx, func() error {
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
	if err := idempotencyHit(r, tce.CancellationReasons); err != nil {
		return err // a held key answers before any refusal (idempotency.go)
	}
	return s.refuse(ctx, r, tx, tce.CancellationReasons)
}

// prepareReserve builds the expressions of a send and of a release.
func (s *Store) prepareReserve() (err error) {
	l := s.limits
	ipSlots, tgtSlots := newWindow(ipSlot, l.IPCap), newWindow(targetSlot, l.TargetCap)
	now, ipCut, dayCut := arg(pNow), arg(pIPCut), arg(pDayCut)

	// The IP's rolling budget: the oldest of its last IPCap sends must have
	// left the window. Without a captcha token, the gate also asks that the
	// CaptchaIPGate-th newest send left it (else the send looks abnormal).
	// The update with the budget alone is also what refuse spends.
	ipUpdate := ipSlots.shift(expression.UpdateBuilder{}, now).
		Set(expression.Name(attrTTL), arg(pIPTTL))
	ipBudget := ipSlots.olderThan(0, ipCut)
	ipParams := []param{pNow, pIPCut, pIPTTL}
	if s.ip, err = prepare("reserve", expression.NewBuilder().WithUpdate(ipUpdate).WithCondition(ipBudget), ipParams...); err != nil {
		return err
	}
	s.ipGated = s.ip
	if g := l.CaptchaIPGate; g > 0 && g <= l.IPCap {
		gate := ipBudget.And(ipSlots.olderThan(l.IPCap-g, ipCut))
		if s.ipGated, err = prepare("reserve", expression.NewBuilder().WithUpdate(ipUpdate).WithCondition(gate), ipParams...); err != nil {
			return err
		}
	}

	// The target's cooldown (its newest send is at least Cooldown old) and
	// daily cap (the oldest of its last TargetCap sends left the 24 h window);
	// without a captcha token also the gate (the CaptchaTgtGate-th newest
	// send left the window). The new code replaces the old one on the same
	// item, which is what supersedes it; used_at goes, attempts restart.
	n := l.TargetCap
	tgtUpdate := tgtSlots.shift(expression.UpdateBuilder{}, now).
		Set(expression.Name(attrNonce), arg(pNonce)).
		Set(expression.Name(attrCodeHash), arg(pCodeHash)).
		Set(expression.Name(attrAttempts), expression.Value(0)).
		Set(expression.Name(attrExpiresAt), arg(pExpiresAt)).
		Set(expression.Name(attrIdentity), arg(pIdentity)).
		Set(expression.Name(attrChannel), arg(pChannel)).
		Set(expression.Name(attrTarget), arg(pTarget)).
		Set(expression.Name(attrTTL), arg(pTgtTTL)).
		Remove(expression.Name(attrUsedAt))
	tgtCond := tgtSlots.olderThan(n-1, arg(pCoolCut)).And(tgtSlots.olderThan(0, dayCut))
	tgtParams := []param{pNow, pCoolCut, pDayCut, pNonce, pCodeHash, pExpiresAt, pIdentity, pChannel, pTarget, pTgtTTL}
	if s.tgt, err = prepare("reserve", expression.NewBuilder().WithUpdate(tgtUpdate).WithCondition(tgtCond), tgtParams...); err != nil {
		return err
	}
	s.tgtGated = s.tgt
	if g := l.CaptchaTgtGate; g > 0 && g <= n {
		gate := tgtCond.And(tgtSlots.olderThan(n-g, dayCut))
		if s.tgtGated, err = prepare("reserve", expression.NewBuilder().WithUpdate(tgtUpdate).WithCondition(gate), tgtParams...); err != nil {
			return err
		}
	}

	// A captcha token serves CaptchaTokenUses accepted sends: each spends a
	// use in the send's transaction, while fewer than that are spent, so
	// concurrent sends with one token never exceed its uses; a refused send
	// (cancelled transaction) spends none.
	uses := expression.Name(attrUses)
	if s.tokenUse, err = prepare("reserve", expression.NewBuilder().
		WithUpdate(expression.Add(uses, expression.Value(1)).
			Set(expression.Name(attrTTL), arg(pTokTTL))).
		WithCondition(uses.AttributeNotExists().Or(uses.LessThan(expression.Value(l.CaptchaTokenUses)))),
		pTokTTL); err != nil {
		return err
	}

	// Only the reservation that is still the target's current one may be
	// undone: a newer send owns the item (and its newest slot) now.
	s.release, err = prepare("release", expression.NewBuilder().
		WithUpdate(tgtSlots.unshift(expression.UpdateBuilder{}).
			Remove(expression.Name(attrNonce)).
			Remove(expression.Name(attrCodeHash)).
			Remove(expression.Name(attrAttempts)).
			Remove(expression.Name(attrExpiresAt)).
			Remove(expression.Name(attrUsedAt)).
			Remove(expression.Name(attrIdentity)).
			Remove(expression.Name(attrChannel)).
			Remove(expression.Name(attrTarget))).
		WithCondition(expression.Name(attrNonce).Equal(arg(pNonce))), pNonce)
	return err
}

func (s *Store) reserveTx(r verification.Reservation) (reserve, error) {
	l := s.limits
	now := r.Now.UnixMilli()
	tx := reserve{tokenAt: -1, userAt: -1}
	a := &tx.args
	a[pNow] = num(now)
	a[pIPCut] = num(now - l.IPWindow.Milliseconds())
	a[pCoolCut] = num(now - l.Cooldown.Milliseconds())
	a[pDayCut] = num(now - l.TargetWindow.Milliseconds())
	a[pIPTTL] = num(ttlOf(r.Now.Add(l.IPWindow)))
	a[pTgtTTL] = num(ttlOf(latest(r.Now.Add(l.TargetWindow), r.Now.Add(l.Cooldown), r.ExpiresAt)))
	a[pNonce] = str(r.Nonce)
	a[pCodeHash] = str(r.CodeHash)
	a[pExpiresAt] = num(r.ExpiresAt.UnixMilli())
	a[pIdentity] = str(r.Identity)
	a[pChannel] = str(string(r.Channel))
	a[pTarget] = str(string(r.Target))

	// The IP's budget and the target's cooldown and cap (prepareReserve);
	// without a captcha token also the gates, which the token lifts.
	ip, tgt := &s.ip, &s.tgt
	if r.CaptchaID == "" {
		ip, tgt = &s.ipGated, &s.tgtGated
	}
	ipValues, err := ip.bind(a)
	if err != nil {
		return tx, err
	}
	tgtValues, err := tgt.bind(a)
	if err != nil {
		return tx, err
	}

	items := make([]types.TransactWriteItem, 2, 4)
	items[ipAt] = types.TransactWriteItem{Update: &types.Update{
		TableName:                           s.table,
		Key:                                 key(prefixIP + r.IP),
		UpdateExpression:                    ip.update,
		ConditionExpression:                 ip.condition,
		ExpressionAttributeNames:            ip.names,
		ExpressionAttributeValues:           ipValues,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}
	items[targetAt] = types.TransactWriteItem{Update: &types.Update{
		TableName:                           s.table,
		Key:                                 key(prefixTarget + r.Handle),
		UpdateExpression:                    tgt.update,
		ConditionExpression:                 tgt.condition,
		ExpressionAttributeNames:            tgt.names,
		ExpressionAttributeValues:           tgtValues,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}}

	if r.CaptchaID != "" {
		// The token spends one of its uses (prepareReserve). The record
		// lives as long as the token could still pass Check; an expired
		// token is refused before it gets here, so a lingering record of one
		// needs no expiry test.
		a[pTokTTL] = num(ttlOf(latest(r.CaptchaExp, r.Now).Add(tokenGrace)))
		values, err := s.tokenUse.bind(a)
		if err != nil {
			return tx, err
		}
		tx.tokenAt = len(items)
		items = append(items, types.TransactWriteItem{Update: &types.Update{
			TableName:                           s.table,
			Key:                                 key(prefixToken + r.CaptchaID),
			UpdateExpression:                    s.tokenUse.update,
			ConditionExpression:                 s.tokenUse.condition,
			ExpressionAttributeNames:            s.tokenUse.names,
			ExpressionAttributeValues:           values,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}})
	}

	if r.Require != verification.RequireNothing {
		// USER needs the user item to exist, NOT_USER needs it absent. The
		// check is in the transaction, so no send can slip between a lookup
		// and the reservation.
		user := &s.user
		if r.Require == verification.RequireNoUser {
			user = &s.noUser
		}
		tx.userAt = len(items)
		items = append(items, types.TransactWriteItem{ConditionCheck: &types.ConditionCheck{
			TableName:                           s.users,
			Key:                                 map[string]types.AttributeValue{attrIdentity: str(r.Identity)},
			ConditionExpression:                 user.condition,
			ExpressionAttributeNames:            user.names,
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}})
	}
	items, tx.pump = s.appendPumping(items, r)
	items = s.appendIdempotency(items, r) // last: idempotency.go
	tx.in = &dynamodb.TransactWriteItemsInput{TransactItems: items}
	return tx, nil
}

// refuse names the refusal of a cancelled reservation from its reasons. An
// item that did not fail its condition comes back without its old image;
// reading it as "no events" is equivalent, because its condition says
// exactly what Judge would check on it.
func (s *Store) refuse(ctx context.Context, r verification.Reservation, tx reserve, reasons []types.CancellationReason) error {
	// The pumping refusals come before every other limit, and spend nothing.
	if err := s.pumpingRefusal(r, tx.pump, reasons); err != nil {
		return err
	}
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

	// The user check refused, and that still spends the IP's budget, so the
	// endpoint cannot enumerate accounts for free. The same shift as in the
	// transaction, under the same IP condition (s.ip, or s.ipGated without a
	// captcha token): concurrent probes from one IP may all have passed the
	// gate in their transactions, which spent nothing; checked again here,
	// where the spends happen one after the other, they get at most
	// CaptchaIPGate answers before captcha_required, like accepted sends.
	ipExpr := &s.ip
	if !captchaGiven {
		ipExpr = &s.ipGated
	}
	spend, err := ipExpr.bind(&tx.args)
	if err != nil {
		return err
	}
	var ccf *types.ConditionalCheckFailedException
	_, err = s.update(ctx, key(prefixIP+r.IP), ipExpr, spend, types.ReturnValueNone)
	switch {
	case err == nil:
		return refusal
	case errors.As(err, &ccf):
		// Concurrent sends spent the budget, or reached the gate, between
		// the two calls: the refusal they now earn comes first.
		ip = slotsOf(ccf.Item, ipSlot, s.limits.IPCap)
		again, _ := s.limits.Judge(ip, tgt, r.Now).Refusal(captchaGiven, captchaUsed, userRefusal)
		if k := verification.KindOf(again); k == verification.KindRateLimitExceeded || k == verification.KindCaptchaRequired {
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
	// undone (prepareReserve).
	values, err := s.release.bind(&args{pNonce: str(r.Nonce)})
	if err != nil {
		return err
	}
	var ccf *types.ConditionalCheckFailedException
	_, err = s.update(ctx, key(prefixTarget+r.Handle), &s.release, values, types.ReturnValueNone)
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
