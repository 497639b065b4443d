package verification

import "sync"

// BreakerTransition is a change of a prefix's breaker state, as one instance
// saw it.
type BreakerTransition struct {
	Prefix   string
	From, To BreakerState
	// Counts are the prefix's counters the change was read from; CountsKnown
	// is false when it was read from an accepted send, whose transaction
	// returns no counts (only a refused one returns the old item).
	Counts      PrefixCounts
	CountsKnown bool
}

// BreakerObserver hears of breaker transitions (the app logs them and counts
// trips as metrics).
type BreakerObserver interface {
	Transition(t BreakerTransition)
}

// maxWatched bounds the prefixes one instance remembers as tripped, so a
// bot spraying prefixes cannot grow the memory of a warm instance without
// bound. Past it, a new trip is still reported but not remembered, so its
// way back to healthy is not.
const maxWatched = 10000

// BreakerWatch is one instance's memory of the breakers it saw tripped. It
// belongs to the instance, not to a service built around one set of keys:
// pass the same watch to every service an instance builds (Deps.Watch), so
// a key rotation forgets no trip. It derives transitions from what each
// send learns: a breaker
// refusal carries the counts the store read (the old item of the failed
// condition), and an accepted send without a captcha token proves its prefix
// healthy, one with a token proves it not blocked. DynamoDB returns nothing
// from a transaction that succeeded, so the crossing write itself cannot
// report the trip; the first send after it does. The memory is per instance:
// each warm instance reports a transition once, so N instances may report
// the same trip up to N times (docs/security-pumping.md). The zero value is
// ready to use.
type BreakerWatch struct {
	mu      sync.Mutex
	tripped map[string]BreakerState // prefixes not healthy, as last seen
}

// refused notes a breaker refusal of prefix read from counts.
func (w *BreakerWatch) refused(r *PrefixRefusal) (BreakerTransition, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	from := w.tripped[r.Prefix] // Healthy when absent
	if from == r.State {
		return BreakerTransition{}, false
	}
	if w.tripped == nil {
		w.tripped = map[string]BreakerState{}
	}
	if _, ok := w.tripped[r.Prefix]; ok || len(w.tripped) < maxWatched {
		w.tripped[r.Prefix] = r.State
	}
	return BreakerTransition{Prefix: r.Prefix, From: from, To: r.State, Counts: r.Counts, CountsKnown: true}, true
}

// accepted notes an accepted send to prefix, with or without a captcha
// token.
func (w *BreakerWatch) accepted(prefix string, captcha bool) (BreakerTransition, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	from, ok := w.tripped[prefix]
	switch {
	case !ok:
		return BreakerTransition{}, false
	case !captcha:
		delete(w.tripped, prefix)
		return BreakerTransition{Prefix: prefix, From: from, To: Healthy}, true
	case from == Blocked:
		// A captcha lifts only a suspect prefix: it is no longer blocked.
		w.tripped[prefix] = Suspect
		return BreakerTransition{Prefix: prefix, From: Blocked, To: Suspect}, true
	}
	return BreakerTransition{}, false
}
