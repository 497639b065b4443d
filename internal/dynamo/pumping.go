package dynamo

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/verification"
)

// The SMS pumping defences (verification.Pumping) keep two kinds of items,
// both written inside the send's one TransactWriteItems, so they cost no
// extra round trip and every instance sees the same counts:
//
//	pfx#<prefix>  the breaker's counters of one number prefix: for each
//	              bucket c of the next BreakerBuckets buckets, u<c>
//	              (unverified sends) and x<c> (unverified minus 4 x verified)
//	              of the window that bucket reads (the last 50 to 60 minutes).
//	smsb#<shard>  one shard of the global SMS budget: b0..b{N-1}, the times of
//	              its last accepted sends, a rolling window like ip#.
//
// A DynamoDB condition compares an attribute with a constant but cannot add
// or multiply, so every number a condition needs is kept ready: a send adds 1
// to u and x of the windows it falls in, a verified code adds -1 and -5, and
// "unverified ≥ limit and unverified > 4 x verified" reads u<b> ≥ limit and
// x<b> > 0. The attribute names carry the bucket number, so an old window
// is never mistaken for the current one and needs no reset; each write
// removes the windows of the buckets just past.
//
// Hot items (docs/design.md, "SMS pumping: hot items"): a prefix item takes the sends of one
// prefix only, and the budget is split over Pumping.Shards() items, each
// admitting at most BudgetShardCap sends per window.
const (
	prefixPrefix = "pfx#"
	prefixBudget = "smsb#"

	unverifiedAttr = "u" // u<bucket>
	excessAttr     = "x" // x<bucket>
	budgetSlot     = "b" // b0..b{N-1}
)

// pumpingExpr are the pumping expressions, written once by New. They
// are written as text: the attribute names of a breaker write depend on the
// bucket (#u0 is "u<b>", #u1 "u<b+1>" ...), so each request binds its own
// ExpressionAttributeNames, while the strings stay shared and read only.
type pumpingExpr struct {
	cfg verification.Pumping

	// A breaker write (a send's, under prefixCond; a verify's, under none).
	prefixUpdate, prefixCond *string

	// A send's budget write, one condition per shard cap: the budget is
	// split evenly, so shards admit either MaxShardCap or one fewer sends.
	budgetFull, budgetLess expr
	budgetSlots            int // 0: no budget

	// names caches the breaker's attribute names of the latest bucket: they
	// change every ten minutes, and building them (25 strings and a map) per
	// send was most of the counters' cost in BenchmarkDynamoReserveSMS: 131
	// allocations a send instead of 63 with the cache (40 for a send without
	// the counters; BENCHMARKS.md). The map is
	// shared by all requests of that bucket and never written after it is
	// stored (the SDK only reads its inputs).
	names atomic.Pointer[bucketNames]
}

type bucketNames struct {
	bucket int64
	names  map[string]string
}

// namesOf is breakerNames(b), from the cache when b is the latest bucket.
func (e *pumpingExpr) namesOf(b int64) map[string]string {
	if n := e.names.Load(); n != nil && n.bucket == b {
		return n.names
	}
	m := breakerNames(b)
	e.names.Store(&bucketNames{bucket: b, names: m})
	return m
}

// The constants of the breaker's writes, shared by all requests (read only).
var (
	avSendUnverified   = num(verification.SendUnverified)
	avSendExcess       = num(verification.SendExcess)
	avVerifyUnverified = num(verification.VerifyUnverified)
	avVerifyExcess     = num(verification.VerifyExcess)
)

// pumpAt is where a send's pumping items sit in its transaction, -1 for
// none.
type pumpAt struct {
	prefix, budget int
}

// preparePumping writes the expressions of the SMS pumping defences p: the
// breaker and the global budget are checked and counted in every SMS send's
// transaction, and a right SMS code counts as verified for its prefix.
func (s *Store) preparePumping(p verification.Pumping) error {
	e := pumpingExpr{cfg: p}
	n := verification.BreakerBuckets
	var set, rm []string
	for i := range n {
		set = append(set, fmt.Sprintf("#u%d = if_not_exists(#u%d, :zero) + :du", i, i))
	}
	for i := range n {
		set = append(set, fmt.Sprintf("#x%d = if_not_exists(#x%d, :zero) + :dx", i, i))
	}
	set = append(set, "#ttl = :ttl")
	for i := range n {
		rm = append(rm, fmt.Sprintf("#uo%d", i), fmt.Sprintf("#xo%d", i))
	}
	e.prefixUpdate = aws.String("SET " + strings.Join(set, ", ") + " REMOVE " + strings.Join(rm, ", "))
	// #u0 and #x0 are the counts of the send's own bucket's window. The
	// prefix is healthy below the limit or while verified codes outweigh
	// the unverified ones; a missing window has no sends at all. A send with
	// a captcha token passes a suspect prefix, not a blocked one: :lim is
	// the limit without a token, 3 x the limit with one.
	e.prefixCond = aws.String("attribute_not_exists(#u0) OR #u0 < :lim OR #x0 <= :zero")

	if k := p.Shards(); k > 0 {
		m := p.MaxShardCap()
		if m < 1 || m > maxSlots {
			return fmt.Errorf("dynamo: budget shard of %d slots, want 1..%d", m, maxSlots)
		}
		e.budgetSlots = m
		// The rolling window of ip#: the slots shift by one and the newest
		// is now (see shift).
		update := "SET " + shift(budgetSlot, m) + ", #ttl = :ttl"
		// A shard of cap m admits the send when the oldest of its last m
		// sends left the window; one of cap m-1 when the second oldest did.
		e.budgetFull = newExpr(update, "attribute_not_exists(#b0) OR #b0 <= :cut", "", nil)
		if m > 1 {
			e.budgetLess = newExpr(update, "attribute_not_exists(#b1) OR #b1 <= :cut", "", nil)
		}
	}
	s.pump = &e
	return nil
}

// breakerNames are the attribute names of a breaker write in bucket b.
func breakerNames(b int64) map[string]string {
	n := verification.BreakerBuckets
	names := make(map[string]string, 4*n+1)
	for i := range n {
		c := strconv.FormatInt(b+int64(i), 10)
		o := strconv.FormatInt(b-int64(i)-1, 10)
		names["#u"+strconv.Itoa(i)] = unverifiedAttr + c
		names["#x"+strconv.Itoa(i)] = excessAttr + c
		names["#uo"+strconv.Itoa(i)] = unverifiedAttr + o
		names["#xo"+strconv.Itoa(i)] = excessAttr + o
	}
	names["#ttl"] = attrTTL
	return names
}

// breakerValues are the values of a breaker write at now adding du and dx.
func (e *pumpingExpr) breakerValues(now time.Time, du, dx types.AttributeValue) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		":zero": constants[":zero"],
		":du":   du,
		":dx":   dx,
		// The item matters while its last window does.
		":ttl": num(ttlOf(now.Add(e.cfg.Window))),
	}
}

// appendPumping adds r's pumping items to a send's transaction.
func (s *Store) appendPumping(items []types.TransactWriteItem, r verification.Reservation) ([]types.TransactWriteItem, pumpAt) {
	at := pumpAt{prefix: -1, budget: -1}
	e := s.pump
	if r.Prefix != "" {
		values := e.breakerValues(r.Now, avSendUnverified, avSendExcess)
		lim := e.cfg.UnverifiedLimit
		if r.CaptchaID != "" {
			lim = verification.BlockFactor * e.cfg.UnverifiedLimit
		}
		values[":lim"] = num(int64(lim))
		at.prefix = len(items)
		items = append(items, s.updateItem(key(prefixPrefix+r.Prefix),
			&expr{update: e.prefixUpdate, condition: e.prefixCond, names: e.namesOf(e.cfg.Bucket(r.Now))}, values))
	}
	if r.CountBudget && e.budgetSlots > 0 && r.BudgetShard >= 0 && r.BudgetShard < e.cfg.Shards() {
		now := r.Now.UnixMilli()
		b := &e.budgetFull
		if e.cfg.ShardCap(r.BudgetShard) < e.budgetSlots {
			b = &e.budgetLess
		}
		at.budget = len(items)
		items = append(items, s.updateItem(key(prefixBudget+strconv.Itoa(r.BudgetShard)), b, b.values(map[string]types.AttributeValue{
			":now": num(now),
			":cut": num(now - e.cfg.Window.Milliseconds()),
			":ttl": num(ttlOf(r.Now.Add(e.cfg.Window))),
		})))
	}
	return items, at
}

// pumpingRefusal names the pumping refusal of a cancelled send from the old
// items of its pumping writes, or nil when they broke no rule. An item that
// did not fail comes back without its old image; reading it as "no sends"
// is equivalent, because its condition says what the judgement checks.
func (s *Store) pumpingRefusal(r verification.Reservation, at pumpAt, reasons []types.CancellationReason) error {
	e := s.pump
	var j verification.PumpingJudgement
	if at.prefix >= 0 {
		item := reasons[at.prefix].Item
		b := strconv.FormatInt(e.cfg.Bucket(r.Now), 10)
		j.Prefix = r.Prefix
		j.Counts = verification.PrefixCounts{
			Unverified: numOf(item, unverifiedAttr+b),
			Excess:     numOf(item, excessAttr+b),
		}
		j.State = e.cfg.State(j.Counts)
	}
	if at.budget >= 0 {
		shard := slotsOf(reasons[at.budget].Item, budgetSlot, e.budgetSlots)
		e.cfg.JudgeBudget(&j, shard, r.BudgetShard, r.Now)
	}
	return j.Refusal(r.CaptchaID != "")
}

// verifiedItem is the write that counts a right code of identity as
// verified for its prefix, for the verify's own transaction; false when the
// code is not an SMS or its prefix is not counted. It has no condition: a
// verified code only ever helps its prefix.
func (s *Store) verifiedItem(identity string, ch verification.Channel, now time.Time) (types.TransactWriteItem, bool) {
	e := s.pump
	if ch != verification.SMS {
		return types.TransactWriteItem{}, false
	}
	prefix := e.cfg.Counted(identity)
	if prefix == "" {
		return types.TransactWriteItem{}, false
	}
	return types.TransactWriteItem{Update: &types.Update{
		TableName:                 s.table,
		Key:                       key(prefixPrefix + prefix),
		UpdateExpression:          e.prefixUpdate,
		ExpressionAttributeNames:  e.namesOf(e.cfg.Bucket(now)),
		ExpressionAttributeValues: e.breakerValues(now, avVerifyUnverified, avVerifyExcess),
	}}, true
}
