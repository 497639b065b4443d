package verification

import "time"

// Limits are the sending rules: a cooldown and a daily cap per target, an
// hourly budget per IP, the captcha gates, and the verify and captcha
// budgets. Both stores enforce them atomically; Judge is their one
// description in Go, which the in-memory store runs under its lock and the
// DynamoDB store uses to name the refusal after a condition failed (its
// condition expressions say the same thing).
type Limits struct {
	Cooldown       time.Duration // per target, between accepted sends
	TargetCap      int           // accepted sends per target per TargetWindow
	TargetWindow   time.Duration // rolling, 24 h
	IPCap          int           // accepted sends per IP per IPWindow
	IPWindow       time.Duration // rolling, 1 h
	CaptchaIPGate  int           // abnormal from this many sends of the IP in IPWindow (0 = off)
	CaptchaTgtGate int           // abnormal from this many sends of the target in TargetWindow (0 = off)
	MaxAttempts    int           // wrong codes before a code dies
	CodeTTL        time.Duration

	// VerifyIPCap bounds the verifies of live codes per IP key per IPWindow,
	// so that one address cannot spread guesses over many verification_ids.
	VerifyIPCap int
	// CaptchaIPCap bounds the captcha images per IP key per IPWindow: each
	// image is a stored item and three more guesses.
	CaptchaIPCap int
	// CaptchaTokenUses is how many accepted sends one captcha_token serves
	// within its lifetime (the CloudBase JS SDK caches and resends it).
	CaptchaTokenUses int
}

// Slots are the times (Unix milliseconds) of the last accepted events of one
// key, oldest first, zero for "none": the one rolling window of both stores
// (DynamoDB keeps them as attributes of the key's item, the memory store as
// this slice). A rolling limit of N events per window W keeps N slots: a new
// event is allowed when the oldest left the window. Limits are at most 100,
// so shifting the slots in place costs less than a ring's bookkeeping.
type Slots []int64

// Push records an event at now, dropping the oldest slot.
func (s Slots) Push(now int64) {
	copy(s, s[1:])
	s[len(s)-1] = now
}

// Pop undoes the newest Push. The value Push dropped was outside the window
// (that is why the event was accepted), so a zero in its place is equivalent.
func (s Slots) Pop() {
	copy(s[1:], s)
	s[0] = 0
}

// Wait is how long until the oldest of the last n events leaves a window of
// the given length at now, letting one more event in; zero when there is
// room already.
func (s Slots) Wait(n int, window time.Duration, now time.Time) time.Duration {
	cut := now.UnixMilli() - window.Milliseconds()
	if t := s.Newest(n); t > cut {
		return time.Duration(t-cut) * time.Millisecond
	}
	return 0
}

// Newest is the time of the k-th most recent event (k from 1), 0 if none.
func (s Slots) Newest(k int) int64 {
	if k < 1 || k > len(s) {
		return 0
	}
	return s[len(s)-k]
}

// Judgement is what the limits say of one send, before the user check.
type Judgement struct {
	IPSpent       bool // the IP's rolling budget is used up
	IPRetry       time.Duration
	TargetLimited bool // cooldown or daily cap
	TargetRetry   time.Duration
	Abnormal      bool // the captcha gate applies
}

// Judge applies the limits to the slots of an IP and of a target at now.
func (l Limits) Judge(ip, target Slots, now time.Time) Judgement {
	var j Judgement
	ms := now.UnixMilli()
	ipCut := ms - l.IPWindow.Milliseconds()
	dayCut := ms - l.TargetWindow.Milliseconds()
	if w := ip.Wait(l.IPCap, l.IPWindow, now); w > 0 {
		j.IPSpent, j.IPRetry = true, w
	}
	if t := target.Newest(1); t > ms-l.Cooldown.Milliseconds() {
		j.TargetLimited = true
		j.TargetRetry = time.Duration(t+l.Cooldown.Milliseconds()-ms) * time.Millisecond
	}
	if w := target.Wait(l.TargetCap, l.TargetWindow, now); w > 0 {
		j.TargetLimited = true
		j.TargetRetry = max(j.TargetRetry, w)
	}
	if l.CaptchaIPGate > 0 && ip.Newest(l.CaptchaIPGate) > ipCut {
		j.Abnormal = true
	}
	if l.CaptchaTgtGate > 0 && target.Newest(l.CaptchaTgtGate) > dayCut {
		j.Abnormal = true
	}
	return j
}

// Refusal turns a judgement and the outcome of the captcha and user checks
// into the one refusal the order of precedence says wins, or nil (the
// README's "When several refusals apply"). captchaGiven says a valid-looking captcha token came
// with the send; captchaUsed that its uses are already spent. userRefusal is ErrUserNotFound, ErrUserExists or nil.
// spendIP reports whether the refusal still spends the IP's budget.
func (j Judgement) Refusal(captchaGiven, captchaUsed bool, userRefusal error) (err error, spendIP bool) {
	switch {
	case j.IPSpent:
		// The wait is the longer of the two, so that the same send succeeds after it.
		wait := j.IPRetry
		if j.TargetLimited && j.TargetRetry > wait {
			wait = j.TargetRetry
		}
		return RateLimited(ceilSeconds(wait)), false
	case j.TargetLimited:
		return RateLimited(ceilSeconds(j.TargetRetry)), false
	case captchaGiven && captchaUsed:
		return ErrCaptchaInvalid, false
	case j.Abnormal && !captchaGiven:
		return ErrCaptchaRequired, false
	case userRefusal != nil:
		return userRefusal, true
	}
	return nil, false
}

func ceilSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
