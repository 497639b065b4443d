package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/verification"
)

// tokenGrace keeps a captcha token's record of spent uses a little past the
// token's own expiry, so that a Lambda instance whose clock runs slightly
// behind cannot accept the token afresh after TTL deleted its record.
const tokenGrace = 5 * time.Minute

// reserve is one send's transaction and where its items sit in it.
type reserve struct {
	items   []types.TransactWriteItem
	ip      *expr // the IP item's expression: s.ip, or s.ipGated without a captcha token
	tokenAt int   // index of the captcha token's Put, -1 without one
	userAt  int   // index of the users-table ConditionCheck, -1 for ANY

	pump pumpAt // where the SMS pumping items sit (pumping.go)
}

// Positions of the first two items, fixed.
const (
	ipAt     = 0
	targetAt = 1
)

// Reserve commits r in one TransactWriteItems, or names the refusal from
// the old items DynamoDB returns with the cancellation, in the order of
// refusals that Limits.Judge and Judgement.Refusal encode. A refusal by the user check
// costs one more UpdateItem: it spends the IP's budget, under the captcha
// gate too. An ANY send reads its user item (Exists) beside the
// transaction, so the answer costs no extra wait; Reserve waits for both.
func (s *Store) Reserve(ctx context.Context, r verification.Reservation) (isUser bool, err error) {
	tx := s.reserveTx(r)
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
	reasons, err := s.transact(ctx, "reserve", tx.items...)
	if err != nil || reasons == nil {
		return err
	}
	if err := idempotencyHit(r, reasons); err != nil {
		return err // a held key answers before any refusal (idempotency.go)
	}
	return s.refuse(ctx, r, tx, reasons)
}

// prepareReserve writes the expressions of a send and of a release.
func (s *Store) prepareReserve() {
	l := s.limits

	// The IP's rolling budget: the oldest of its last IPCap sends must have
	// left the window. Without a captcha token, the gate also asks that the
	// CaptchaIPGate-th newest send left it (else the send looks abnormal).
	// The update with the budget alone is also what refuse spends.
	s.ip = budget(l.IPCap)
	s.ipGated = s.ip
	if g := l.CaptchaIPGate; g > 0 && g <= l.IPCap {
		s.ipGated = newExpr(*s.ip.update, and(*s.ip.condition, olderThan(ipSlot, l.IPCap-g, ":ip_cut")), "", nil)
	}

	// The target's cooldown (its newest send is at least Cooldown old) and
	// daily cap (the oldest of its last TargetCap sends left the 24 h window);
	// without a captcha token also the gate (the CaptchaTgtGate-th newest
	// send left the window). The new code replaces the old one on the same
	// item, which is what supersedes it; used_at goes, attempts restart.
	n := l.TargetCap
	tgtUpdate := "REMOVE #used_at\nSET " + shift(targetSlot, n) + ", #nonce = :nonce, #code_hash = :code_hash, #attempts = :zero, " +
		"#expires_at = :expires_at, #identity = :identity, #channel = :channel, #target = :target, #ttl = :ttl\n"
	tgtCond := and(olderThan(targetSlot, n-1, ":cool_cut"), olderThan(targetSlot, 0, ":day_cut"))
	s.tgt = newExpr(tgtUpdate, tgtCond, "", nil)
	s.tgtGated = s.tgt
	if g := l.CaptchaTgtGate; g > 0 && g <= n {
		s.tgtGated = newExpr(tgtUpdate, and(tgtCond, olderThan(targetSlot, n-g, ":day_cut")), "", nil)
	}

	// A captcha token serves CaptchaTokenUses accepted sends: each spends a
	// use in the send's transaction, while fewer than that are spent, so
	// concurrent sends with one token never exceed its uses; a refused send
	// (cancelled transaction) spends none.
	s.tokenUse = newExpr("ADD #uses :one\nSET #ttl = :ttl\n", "(attribute_not_exists (#uses)) OR (#uses < :uses)", "",
		map[string]types.AttributeValue{":uses": num(int64(l.CaptchaTokenUses))})

	// Only the reservation that is still the target's current one may be
	// undone: a newer send owns the item (and its newest slot) now.
	s.release = newExpr("REMOVE #nonce, #code_hash, #attempts, #expires_at, #used_at, #identity, #channel, #target\nSET "+
		unshift(targetSlot, n)+"\n", "#nonce = :nonce", "", nil)
}

func (s *Store) reserveTx(r verification.Reservation) reserve {
	l := s.limits
	now := r.Now.UnixMilli()
	tx := reserve{tokenAt: -1, userAt: -1}
	avNow := num(now)

	// The IP's budget and the target's cooldown and cap (prepareReserve);
	// without a captcha token also the gates, which the token lifts.
	ip, tgt := &s.ip, &s.tgt
	if r.CaptchaID == "" {
		ip, tgt = &s.ipGated, &s.tgtGated
	}
	tx.ip = ip
	ipValues := ip.values(map[string]types.AttributeValue{
		":now":    avNow,
		":ip_cut": num(now - l.IPWindow.Milliseconds()),
		":ttl":    num(ttlOf(r.Now.Add(l.IPWindow))),
	})
	tgtValues := tgt.values(map[string]types.AttributeValue{
		":now":        avNow,
		":cool_cut":   num(now - l.Cooldown.Milliseconds()),
		":day_cut":    num(now - l.TargetWindow.Milliseconds()),
		":nonce":      str(r.Nonce),
		":code_hash":  str(r.CodeHash),
		":expires_at": num(r.ExpiresAt.UnixMilli()),
		":identity":   str(r.Identity),
		":channel":    str(string(r.Channel)),
		":target":     str(string(r.Target)),
		":ttl":        num(ttlOf(latest(r.Now.Add(l.TargetWindow), r.Now.Add(l.Cooldown), r.ExpiresAt))),
	})

	items := make([]types.TransactWriteItem, 2, 4)
	items[ipAt] = s.updateItem(key(prefixIP+r.IP), ip, ipValues)
	items[targetAt] = s.updateItem(key(prefixTarget+r.Handle), tgt, tgtValues)

	if r.CaptchaID != "" {
		// The token spends one of its uses (prepareReserve). The record
		// lives as long as the token could still pass Check; an expired
		// token is refused before it gets here, so a lingering record of one
		// needs no expiry test.
		values := s.tokenUse.values(map[string]types.AttributeValue{
			":ttl": num(ttlOf(latest(r.CaptchaExp, r.Now).Add(tokenGrace))),
		})
		tx.tokenAt = len(items)
		items = append(items, s.updateItem(key(prefixToken+r.CaptchaID), &s.tokenUse, values))
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
	tx.items = items
	return tx
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
	// The values are the transaction's own: nothing wrote them.
	spend := tx.items[ipAt].Update.ExpressionAttributeValues
	var ccf *types.ConditionalCheckFailedException
	_, err := s.update(ctx, key(prefixIP+r.IP), tx.ip, spend, types.ReturnValueNone)
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
	values := s.release.values(map[string]types.AttributeValue{":nonce": str(r.Nonce)})
	var ccf *types.ConditionalCheckFailedException
	_, err := s.update(ctx, key(prefixTarget+r.Handle), &s.release, values, types.ReturnValueNone)
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
