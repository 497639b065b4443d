package captcha

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"math/rand"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/verification"
)

// fakeStore is an in-memory Store that honours the contract of store.go
// under one lock, and counts the calls it receives.
type fakeStore struct {
	mu      sync.Mutex
	items   map[string]*fakeChallenge
	puts    int
	solves  int
	failPut error // returned by PutChallenge when set
	failSol error // returned by SolveChallenge when set
}

type fakeChallenge struct {
	Challenge
	wrong  int
	solved bool
}

func newFakeStore() *fakeStore { return &fakeStore{items: map[string]*fakeChallenge{}} }

func (f *fakeStore) PutChallenge(_ context.Context, c Challenge) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	if f.failPut != nil {
		return f.failPut
	}
	f.items[c.ID] = &fakeChallenge{Challenge: c}
	return nil
}

func (f *fakeStore) SolveChallenge(_ context.Context, s Solve) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.solves++
	if f.failSol != nil {
		return f.failSol
	}
	c, ok := f.items[s.ID]
	switch {
	case !ok, !s.Now.Before(c.ExpiresAt):
		return ErrExpired
	case c.solved:
		return ErrUsed
	case c.wrong >= s.MaxAttempts:
		return ErrExpired
	case c.AnswerHash != s.AnswerHash:
		c.wrong++
		return ErrWrong
	}
	c.solved = true
	return nil
}

func (f *fakeStore) get(id string) (fakeChallenge, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.items[id]
	if !ok {
		return fakeChallenge{}, false
	}
	return *c, true
}

// clock is a settable time for Service.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testMaster(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// newTest returns a Service over a fake store and a clock at t0, and a map
// that collects the answers OnIssue hands out.
func newTest(t *testing.T) (*Service, *fakeStore, *clock, map[string]string) {
	t.Helper()
	st := newFakeStore()
	clk := &clock{t: t0}
	answers := map[string]string{}
	var mu sync.Mutex
	s, err := NewService(st, testMaster(1), Options{Now: clk.Now, OnIssue: func(token, answer string) {
		mu.Lock()
		defer mu.Unlock()
		answers[token] = answer
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s, st, clk, answers
}

func TestNewService(t *testing.T) {
	if _, err := NewService(newFakeStore(), make([]byte, 31), Options{}); err == nil {
		t.Error("31-byte master: got no error, want one")
	}
	if _, err := NewService(nil, testMaster(1), Options{}); err == nil {
		t.Error("nil store: got no error, want one")
	}
	s, err := NewService(newFakeStore(), testMaster(1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.ttl != 300*time.Second || s.maxAttempts != 3 || s.length != DefaultLength || s.now == nil {
		t.Errorf("defaults: got TTL %v, MaxAttempts %d, Length %d; want 5m0s, 3, %d", s.ttl, s.maxAttempts, s.length, DefaultLength)
	}
	s, err = NewService(newFakeStore(), testMaster(1), Options{TTL: time.Minute, MaxAttempts: 5, Length: MinLength})
	if err != nil {
		t.Fatal(err)
	}
	if s.ttl != time.Minute || s.maxAttempts != 5 || s.length != MinLength {
		t.Errorf("options: got TTL %v, MaxAttempts %d, Length %d; want 1m0s, 5, %d", s.ttl, s.maxAttempts, s.length, MinLength)
	}
}

func TestNew(t *testing.T) {
	s, st, _, answers := newTest(t)
	img, err := s.New(context.Background(), testIP)
	if err != nil {
		t.Fatal(err)
	}

	const prefix = "data:image/png;base64,"
	if !strings.HasPrefix(img.Data, prefix) {
		t.Fatalf("data: got prefix %.30q, want %q", img.Data, prefix)
	}
	pic, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(img.Data, prefix))
	if err != nil {
		t.Fatalf("data is not standard base64: %v", err)
	}
	decoded, err := png.Decode(bytes.NewReader(pic))
	if err != nil {
		t.Fatalf("data is not a PNG: %v", err)
	}
	if b := decoded.Bounds(); b.Dx() != imageWidth || b.Dy() != imageHeight {
		t.Errorf("image size: got %dx%d, want %dx%d", b.Dx(), b.Dy(), imageWidth, imageHeight)
	}

	raw, err := base64.RawURLEncoding.DecodeString(img.Token)
	if err != nil || len(raw) != 16 {
		t.Errorf("token %q: got %d bytes (err %v), want 16 bytes of base64url", img.Token, len(raw), err)
	}
	if img.ExpiresIn != 300 {
		t.Errorf("expires_in: got %d, want 300", img.ExpiresIn)
	}

	answer, ok := answers[img.Token]
	if !ok {
		t.Fatalf("OnIssue was not called with the token")
	}
	if len(answer) != DefaultLength || strings.Trim(answer, alphabet) != "" {
		t.Errorf("answer %q: want %d characters of %q", answer, DefaultLength, alphabet)
	}
	c, ok := st.get(img.Token)
	if !ok {
		t.Fatal("challenge not stored under the token")
	}
	if !c.ExpiresAt.Equal(t0.Add(300 * time.Second)) {
		t.Errorf("stored expiry: got %v, want %v", c.ExpiresAt, t0.Add(300*time.Second))
	}
	if want := s.answerHash(img.Token, strings.ToLower(answer)); c.AnswerHash != want {
		t.Errorf("stored hash: got %q, want HMAC of id and lower-case answer %q", c.AnswerHash, want)
	}
	if strings.Contains(strings.ToLower(c.AnswerHash), strings.ToLower(answer)) {
		t.Errorf("stored hash %q contains the answer", c.AnswerHash)
	}

	// Two captchas never share a token.
	img2, err := s.New(context.Background(), testIP)
	if err != nil {
		t.Fatal(err)
	}
	if img2.Token == img.Token {
		t.Error("two captchas got the same token")
	}
}

func TestNewStoreFailure(t *testing.T) {
	s, st, _, answers := newTest(t)
	st.failPut = fmt.Errorf("put: %w", verification.ErrUnavailable)
	_, err := s.New(context.Background(), testIP)
	if got := verification.KindOf(err); got != verification.KindServiceUnavailable {
		t.Errorf("got %v (%v), want service_unavailable", got, err)
	}
	if len(answers) != 0 {
		t.Error("OnIssue was called for a captcha that was not stored")
	}
}

func TestSolve(t *testing.T) {
	const ok verification.Kind = ""
	wrong := func(a string) string {
		// The same length, one character changed within the alphabet.
		c := alphabet[(strings.IndexByte(alphabet, a[0])+1)%len(alphabet)]
		return string(c) + a[1:]
	}
	type step struct {
		wait time.Duration         // clock advance before this step
		key  func(a string) string // the key sent, from the right answer
		want verification.Kind
	}
	right := func(a string) string { return a }
	tests := []struct {
		name  string
		steps []step
	}{
		{"right answer", []step{{0, right, ok}}},
		{"lower case", []step{{0, strings.ToLower, ok}}},
		{"mixed case", []step{{0, func(a string) string { return strings.ToLower(a[:2]) + a[2:] }, ok}}},
		{"wrong answer", []step{{0, wrong, verification.KindInvalidCaptcha}}},
		{"wrong then right", []step{
			{0, wrong, verification.KindInvalidCaptcha},
			{0, right, ok},
		}},
		{"two wrong then right", []step{
			{0, wrong, verification.KindInvalidCaptcha},
			{0, wrong, verification.KindInvalidCaptcha},
			{0, right, ok},
		}},
		{"third wrong kills it", []step{
			{0, wrong, verification.KindInvalidCaptcha},
			{0, wrong, verification.KindInvalidCaptcha},
			{0, wrong, verification.KindInvalidCaptcha},
			{0, right, verification.KindCaptchaExpired},
		}},
		{"solved twice", []step{
			{0, right, ok},
			{0, right, verification.KindCaptchaUsed},
		}},
		{"wrong after solved", []step{
			{0, right, ok},
			{0, wrong, verification.KindCaptchaUsed},
		}},
		{"fine at TTL-1s", []step{{299 * time.Second, right, ok}}},
		{"expired at TTL+1s", []step{{301 * time.Second, right, verification.KindCaptchaExpired}}},
		{"nothing is trimmed", []step{
			{0, func(a string) string { return " " + a }, verification.KindInvalidCaptcha},
			{0, func(a string) string { return a + "\n" }, verification.KindInvalidCaptcha},
			{0, right, ok},
		}},
		{"prefix and extension are wrong", []step{
			{0, func(a string) string { return a[:4] }, verification.KindInvalidCaptcha},
			{0, func(a string) string { return a + "A" }, verification.KindInvalidCaptcha},
		}},
		{"empty keys spend no attempt", []step{
			{0, func(string) string { return "" }, verification.KindInvalidCaptcha},
			{0, func(string) string { return "" }, verification.KindInvalidCaptcha},
			{0, func(string) string { return "" }, verification.KindInvalidCaptcha},
			{0, func(string) string { return "" }, verification.KindInvalidCaptcha},
			{0, right, ok},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, clk, answers := newTest(t)
			img, err := s.New(context.Background(), testIP)
			if err != nil {
				t.Fatal(err)
			}
			answer := answers[img.Token]
			for i, st := range tt.steps {
				clk.Add(st.wait)
				key := st.key(answer)
				pass, err := s.Solve(context.Background(), img.Token, key, testIP)
				if got := verification.KindOf(err); got != st.want {
					t.Fatalf("step %d: got %q (%v), want %q", i, got, err, st.want)
				}
				if err != nil {
					var e *verification.Error
					if !errors.As(err, &e) || e.Description == "" {
						t.Fatalf("step %d: got %#v, want a *verification.Error with a description", i, err)
					}
					if strings.Contains(e.Error(), answer) {
						t.Fatalf("step %d: error %q reveals the answer", i, e.Error())
					}
					continue
				}
				if pass.ExpiresIn != 300 {
					t.Errorf("step %d: expires_in got %d, want 300", i, pass.ExpiresIn)
				}
				if _, err := s.Check(pass.Token, testIP, clk.Now()); err != nil {
					t.Errorf("step %d: the captcha_token does not pass Check: %v", i, err)
				}
			}
		})
	}
}

func TestSolveBadTokens(t *testing.T) {
	s, st, _, answers := newTest(t)
	img, err := s.New(context.Background(), testIP)
	if err != nil {
		t.Fatal(err)
	}
	answer := answers[img.Token]
	// The token's last character carries 2 bits of data and 4 zero bits;
	// setting one of those gives a second spelling of the same bytes.
	last := strings.IndexByte(b64url, img.Token[len(img.Token)-1])
	noncanon := img.Token[:len(img.Token)-1] + string(b64url[last|1])
	unknown := base64.RawURLEncoding.EncodeToString(make([]byte, 16))

	tests := []struct {
		name, token string
		touches     bool // whether the store is asked
	}{
		{"empty", "", false},
		{"short", img.Token[:21], false},
		{"long", img.Token + "A", false},
		{"padded", img.Token + "==", false},
		{"standard alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(unknown[:20]) + "+/", false},
		{"non-canonical spelling", noncanon, false},
		{"captcha_token instead", "v2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false},
		{"unknown", unknown, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := st.solves
			_, err := s.Solve(context.Background(), tt.token, answer, testIP)
			if got := verification.KindOf(err); got != verification.KindCaptchaExpired {
				t.Errorf("got %q (%v), want captcha_expired", got, err)
			}
			if touched := st.solves != before; touched != tt.touches {
				t.Errorf("store asked: got %v, want %v", touched, tt.touches)
			}
		})
	}
	// None of it spent an attempt on the real challenge.
	if _, err := s.Solve(context.Background(), img.Token, answer, testIP); err != nil {
		t.Errorf("the real challenge after bad tokens: %v", err)
	}
}

const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

func TestSolveEmptyKeyLeavesStoreAlone(t *testing.T) {
	s, st, _, _ := newTest(t)
	img, err := s.New(context.Background(), testIP)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Solve(context.Background(), img.Token, "", testIP)
	if got := verification.KindOf(err); got != verification.KindInvalidCaptcha {
		t.Errorf("got %q, want invalid_captcha", got)
	}
	if st.solves != 0 {
		t.Errorf("store asked %d times, want 0", st.solves)
	}
}

func TestSolveStoreFailure(t *testing.T) {
	s, st, _, answers := newTest(t)
	img, err := s.New(context.Background(), testIP)
	if err != nil {
		t.Fatal(err)
	}
	st.failSol = fmt.Errorf("throttled: %w", verification.ErrUnavailable)
	_, err = s.Solve(context.Background(), img.Token, answers[img.Token], testIP)
	if got := verification.KindOf(err); got != verification.KindServiceUnavailable {
		t.Errorf("got %q (%v), want service_unavailable", got, err)
	}
}

// The Kelvin sign folds to "k" under Unicode rules; "case-insensitive,
// otherwise exact" must not accept it.
func TestFoldIsASCII(t *testing.T) {
	s, _, _, _ := newTest(t)
	id := base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	if s.answerHash(id, "\u212aAAAA") == s.answerHash(id, "kaaaa") {
		t.Error("the Kelvin sign hashes like k")
	}
	if s.answerHash(id, "KAAAA") != s.answerHash(id, "kaaaa") {
		t.Error("upper and lower case hash differently")
	}
}

// Hashes are bound to the challenge: one answer under two ids differs.
func TestAnswerHashBoundToID(t *testing.T) {
	s, _, _, _ := newTest(t)
	a := base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	b := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16))
	if s.answerHash(a, "ackpr") == s.answerHash(b, "ackpr") {
		t.Error("one answer under two ids hashed alike")
	}
}

// The drawing library picks the answer with math/rand's top-level
// functions; they must not be seedable (Go >= 1.24 makes rand.Seed a no-op),
// or the library's rand.Seed(time.Now().UnixNano()) would make answers
// predictable from the start-up time.
func TestAnswerIsNotSeeded(t *testing.T) {
	rand.Seed(1) //nolint:staticcheck // calling the deprecated Seed is the point
	a := rand.Int63()
	rand.Seed(1) //nolint:staticcheck // calling the deprecated Seed is the point
	b := rand.Int63()
	if a == b {
		t.Fatal("math/rand.Seed has an effect (GODEBUG=randseednop=0?): captcha answers would be predictable")
	}
}

func TestConcurrentNewAndSolve(t *testing.T) {
	s, _, _, answers := newTest(t)
	var mu sync.Mutex
	issue := s.onIssue
	s.onIssue = func(token, answer string) {
		mu.Lock()
		defer mu.Unlock()
		issue(token, answer)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := s.New(context.Background(), testIP)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			a := answers[img.Token]
			mu.Unlock()
			if _, err := s.Solve(context.Background(), img.Token, a, testIP); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func BenchmarkNew(b *testing.B) {
	st := newFakeStore()
	s, err := NewService(st, testMaster(1), Options{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.New(context.Background(), testIP); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLength: CAPTCHA_LENGTH sets the characters of every image (4 for the
// CloudBase JS SDK's built-in box), and a length outside 4-6 draws nothing.
func TestLength(t *testing.T) {
	for _, n := range []int{MinLength, DefaultLength, MaxLength} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			s, _, _, answers := newTest(t)
			s.length = n
			img, err := s.New(context.Background(), testIP)
			if err != nil {
				t.Fatal(err)
			}
			answer := answers[img.Token]
			if len(answer) != n || strings.Trim(answer, alphabet) != "" {
				t.Fatalf("answer %q: want %d characters of %q", answer, n, alphabet)
			}
			// The answer solves it, case-insensitively, as at any length.
			if _, err := s.Solve(context.Background(), img.Token, strings.ToLower(answer), testIP); err != nil {
				t.Fatalf("solve: %v", err)
			}
		})
	}
	for _, n := range []int{0, MinLength - 1, MaxLength + 1} {
		s, st, _, _ := newTest(t)
		s.length = n
		if _, err := s.New(context.Background(), testIP); err == nil {
			t.Errorf("length %d: got an image, want an error", n)
		}
		if st.puts != 0 {
			t.Errorf("length %d: stored a challenge", n)
		}
	}
}
