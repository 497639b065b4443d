package memstore

import (
	"time"

	"github.com/verifykit/verifykit/internal/verification"
)

// pumping is the memory store's state of the SMS pumping defences, the same
// counters the DynamoDB store keeps (see internal/dynamo/pumping.go): per
// breaker prefix, the counts of the windows of the coming buckets, and per
// budget shard, the times of its last accepted sends.
type pumping struct {
	cfg      verification.Pumping
	prefixes map[string]map[int64]verification.PrefixCounts // prefix -> bucket -> counts of its window
	shards   []verification.Slots
}

// newPumping is the state of the SMS pumping defences p.
func newPumping(p verification.Pumping) pumping {
	// A shard's slots are made on its first send: a large budget has many.
	return pumping{cfg: p, prefixes: map[string]map[int64]verification.PrefixCounts{}, shards: make([]verification.Slots, p.Shards())}
}

// shard is the slots of the budget shard r draws, nil for none.
func (p *pumping) shard(r verification.Reservation) verification.Slots {
	if !r.CountBudget || r.BudgetShard < 0 || r.BudgetShard >= len(p.shards) {
		return nil
	}
	if p.shards[r.BudgetShard] == nil {
		p.shards[r.BudgetShard] = make(verification.Slots, p.cfg.MaxShardCap())
	}
	return p.shards[r.BudgetShard]
}

// judge reads the counters r would add to, as they are before it.
func (p *pumping) judge(r verification.Reservation) verification.PumpingJudgement {
	var j verification.PumpingJudgement
	if r.Prefix != "" {
		j.Prefix = r.Prefix
		j.Counts = p.prefixes[r.Prefix][p.cfg.Bucket(r.Now)]
		j.State = p.cfg.State(j.Counts)
	}
	if sh := p.shard(r); sh != nil {
		p.cfg.JudgeBudget(&j, sh, r.BudgetShard, r.Now)
	}
	return j
}

// send counts an accepted send.
func (p *pumping) send(r verification.Reservation) {
	if r.Prefix != "" {
		p.add(r.Prefix, r.Now, verification.SendUnverified, verification.SendExcess)
	}
	if sh := p.shard(r); sh != nil {
		sh.Push(r.Now.UnixMilli())
	}
}

// verified counts a right code of rec for its prefix.
func (p *pumping) verified(rec verification.Record, now time.Time) {
	if rec.Channel != verification.SMS {
		return
	}
	if prefix := p.cfg.Counted(rec.Identity); prefix != "" {
		p.add(prefix, now, verification.VerifyUnverified, verification.VerifyExcess)
	}
}

// add counts an event of prefix at now in the window of each bucket from
// now's on that still covers it.
func (p *pumping) add(prefix string, now time.Time, unverified, excess int64) {
	m := p.prefixes[prefix]
	if m == nil {
		m = map[int64]verification.PrefixCounts{}
		p.prefixes[prefix] = m
	}
	b := p.cfg.Bucket(now)
	for c := b; c < b+verification.BreakerBuckets; c++ {
		n := m[c]
		n.Unverified += unverified
		n.Excess += excess
		m[c] = n
	}
}

// sweep drops the windows of past buckets.
func (p *pumping) sweep(now time.Time) {
	b := p.cfg.Bucket(now)
	for prefix, m := range p.prefixes {
		for c := range m {
			if c < b {
				delete(m, c)
			}
		}
		if len(m) == 0 {
			delete(p.prefixes, prefix)
		}
	}
}
