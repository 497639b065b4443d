package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/testenv"
)

// These tests run the whole service (HTTP handler, domain, DynamoDB store)
// against DynamoDB Local with real concurrent requests, and inject faults at
// the real boundaries (a dead DynamoDB endpoint, an SES endpoint that
// refuses or hangs, an SMTP port nobody listens on).

const (
	sendPath   = "/auth/v1/verification"
	verifyPath = "/auth/v1/verification/verify"
)

// noGate switches the captcha gate off for tests about other limits.
var noGate = map[string]string{"CAPTCHA_IP_THRESHOLD": "0", "CAPTCHA_TARGET_THRESHOLD": "0"}

func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// patient gives DynamoDB calls 30 s each instead of the service's 2 s. The
// concurrency tests check who wins, not how fast: DynamoDB Local runs
// transactions on one item one at a time and, on a loaded machine, a burst
// of them waits longer than the production bound, which would turn the
// race into service_unavailable answers (fail closed) and prove nothing.
var patient = []func(*dynamodb.Options){func(o *dynamodb.Options) {
	o.HTTPClient = awshttp.NewBuildableClient().WithTimeout(30 * time.Second)
}}

// concurrently runs n requests at once and counts the answers by status.
func concurrently(t *testing.T, n int, do func(i int) (int, map[string]any)) map[int]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			status, _ := do(i)
			mu.Lock()
			counts[status]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return counts
}

func TestConcurrentSendsToOneTarget(t *testing.T) {
	s := apptest.NewDynamo(t, noGate, nil, app.Options{DynamoOptions: patient})
	counts := concurrently(t, 20, func(i int) (int, map[string]any) {
		st, _, b := s.Do(t, "POST", sendPath, fmt.Sprintf("203.0.113.%d", i+1), `{"target":"ANY","email":"race@example.com"}`, nil)
		return st, b
	})
	if counts[200] != 1 || counts[429] != 19 {
		t.Fatalf("20 concurrent sends to one target: %v, want exactly one 200 and 19 429", counts)
	}
	if n := len(s.Outbox.Messages()); n != 1 {
		t.Fatalf("%d messages sent, want 1", n)
	}
}

func TestConcurrentSendsFromOneIP(t *testing.T) {
	s := apptest.NewDynamo(t, with(noGate, "IP_HOURLY_LIMIT", "10"), nil, app.Options{})
	counts := concurrently(t, 20, func(i int) (int, map[string]any) {
		st, _, b := s.Do(t, "POST", sendPath, "198.51.100.1", fmt.Sprintf(`{"target":"ANY","email":"u%d@example.com"}`, i), nil)
		return st, b
	})
	if counts[200] != 10 || counts[429] != 10 {
		t.Fatalf("20 concurrent sends from one IP with IP_HOURLY_LIMIT=10: %v, want 10 accepted", counts)
	}
}

func TestConcurrentVerifiesOfOneCode(t *testing.T) {
	s := apptest.NewDynamo(t, noGate, nil, app.Options{DynamoOptions: patient})
	_, _, sent := s.Do(t, "POST", sendPath, "198.51.100.2", `{"target":"ANY","phone_number":"+86 13800138000"}`, nil)
	body := fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, sent["verification_id"], s.LastCode(t))
	counts := concurrently(t, 10, func(int) (int, map[string]any) {
		st, _, b := s.Do(t, "POST", verifyPath, "198.51.100.2", body, nil)
		return st, b
	})
	if counts[200] != 1 || counts[400] != 9 {
		t.Fatalf("10 concurrent verifies of the right code: %v, want exactly one 200", counts)
	}
}

func TestConcurrentWrongGuessesNeverExceedTheLimit(t *testing.T) {
	s := apptest.NewDynamo(t, noGate, nil, app.Options{DynamoOptions: patient})
	_, _, sent := s.Do(t, "POST", sendPath, "198.51.100.3", `{"target":"ANY","email":"guess@example.com"}`, nil)
	code := s.LastCode(t)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	var mu sync.Mutex
	errs := map[string]int{}
	concurrently(t, 10, func(int) (int, map[string]any) {
		st, _, b := s.Do(t, "POST", verifyPath, "198.51.100.3", fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, sent["verification_id"], wrong), nil)
		mu.Lock()
		errs[fmt.Sprint(b["error"])]++
		mu.Unlock()
		return st, b
	})
	if errs["invalid_verification_code"] != 4 || errs["too_many_attempts"] != 1 || errs["verification_expired"] != 5 {
		t.Fatalf("10 concurrent wrong guesses: %v, want 4 invalid, 1 too_many_attempts, 5 expired", errs)
	}
	st, _, b := s.Do(t, "POST", verifyPath, "198.51.100.3", fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, sent["verification_id"], code), nil)
	if st != 400 || b["error"] != "verification_expired" {
		t.Fatalf("right code after the limit: %d %v", st, b)
	}
}

// TestCaptchaGateAndBoundedTokenUses walks the captcha flow through the API
// and checks that one captcha token buys exactly CAPTCHA_TOKEN_USES sends
// under concurrency, and none from another IP key.
func TestCaptchaGateAndBoundedTokenUses(t *testing.T) {
	s := apptest.NewDynamo(t, map[string]string{"CAPTCHA_IP_THRESHOLD": "1", "CAPTCHA_TARGET_THRESHOLD": "0", "CAPTCHA_TOKEN_USES": "2"}, nil, app.Options{DynamoOptions: patient})
	ip := "192.0.2.50"
	if st, _, b := s.Do(t, "POST", sendPath, ip, `{"target":"ANY","email":"c0@example.com"}`, nil); st != 200 {
		t.Fatalf("first send: %d %v", st, b)
	}
	if st, _, b := s.Do(t, "POST", sendPath, ip, `{"target":"ANY","email":"c1@example.com"}`, nil); st != 428 || b["error"] != "captcha_required" {
		t.Fatalf("abnormal send without a token: %d %v, want 428 captcha_required", st, b)
	}
	forged := map[string]string{"x-captcha-token": "v2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
	if st, _, b := s.Do(t, "POST", sendPath, "192.0.2.51", `{"target":"ANY","email":"c9@example.com"}`, forged); st != 403 || b["error"] != "captcha_invalid" {
		t.Fatalf("forged token on a normal send: %d %v, want 403 captcha_invalid", st, b)
	}
	tok := solveCaptcha(t, s, ip)
	hdr := map[string]string{"x-captcha-token": tok}
	// From another IP key the token is refused before any limit, and spends
	// nothing.
	if st, _, b := s.Do(t, "POST", sendPath, "192.0.2.52", `{"target":"ANY","email":"c8@example.com"}`, hdr); st != 403 || b["error"] != "captcha_invalid" {
		t.Fatalf("token from another IP key: %d %v, want 403 captcha_invalid", st, b)
	}
	var mu sync.Mutex
	errs := map[string]int{}
	counts := concurrently(t, 6, func(i int) (int, map[string]any) {
		st, _, b := s.Do(t, "POST", sendPath, ip, fmt.Sprintf(`{"target":"ANY","email":"c%d@example.com"}`, i+1), hdr)
		mu.Lock()
		errs[fmt.Sprint(b["error"])]++
		mu.Unlock()
		return st, b
	})
	if counts[200] != 2 || errs["captcha_invalid"] != 4 {
		t.Fatalf("6 concurrent sends with one captcha token of 2 uses: %v %v, want two 200 and 4 captcha_invalid", counts, errs)
	}
}

// TestConcurrentUserProbesFromOneIP: sends refused by the user check answer
// whether an account exists, so they pass the captcha gate like accepted
// sends: ten at once from one IP get CAPTCHA_IP_THRESHOLD answers.
func TestConcurrentUserProbesFromOneIP(t *testing.T) {
	s := apptest.NewDynamo(t, map[string]string{"CAPTCHA_IP_THRESHOLD": "3", "CAPTCHA_TARGET_THRESHOLD": "0"}, []string{"someone@example.com"}, app.Options{DynamoOptions: patient})
	var mu sync.Mutex
	errs := map[string]int{}
	concurrently(t, 10, func(i int) (int, map[string]any) {
		body := fmt.Sprintf(`{"target":"USER","email":"probe%d@example.com"}`, i)
		if i%2 == 1 {
			body = `{"target":"NOT_USER","email":"someone@example.com"}`
		}
		st, _, b := s.Do(t, "POST", sendPath, "198.51.100.77", body, nil)
		mu.Lock()
		errs[fmt.Sprint(b["error"])]++
		mu.Unlock()
		return st, b
	})
	if errs["user_not_found"]+errs["user_already_exists"] != 3 || errs["captcha_required"] != 7 {
		t.Fatalf("10 concurrent probes from one IP with CAPTCHA_IP_THRESHOLD=3: %v, want 3 answers and 7 captcha_required", errs)
	}
}

// TestVerifyAndCaptchaIPBudgets: past VERIFY_IP_HOURLY_LIMIT verifies or
// CAPTCHA_IP_HOURLY_LIMIT images in an hour, an IP key gets
// rate_limit_exceeded with Retry-After; another IP key is not affected.
func TestVerifyAndCaptchaIPBudgets(t *testing.T) {
	s := apptest.NewDynamo(t, with(noGate, "VERIFY_IP_HOURLY_LIMIT", "2", "CAPTCHA_IP_HOURLY_LIMIT", "2"), nil, app.Options{})
	_, _, sent := s.Do(t, "POST", sendPath, "198.51.100.80", `{"target":"ANY","email":"budget@example.com"}`, nil)
	code := s.LastCode(t)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	verify := func(ip, c string) (int, map[string]string, map[string]any) {
		return s.Do(t, "POST", verifyPath, ip, fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, sent["verification_id"], c), nil)
	}
	for i := range 2 {
		if st, _, b := verify("198.51.100.81", wrong); st != 400 || b["error"] != "invalid_verification_code" {
			t.Fatalf("wrong code %d: %d %v", i+1, st, b)
		}
	}
	st, h, b := verify("198.51.100.81", code)
	if st != 429 || b["error"] != "rate_limit_exceeded" || h["Retry-After"] == "" {
		t.Fatalf("third verify from one IP with VERIFY_IP_HOURLY_LIMIT=2: %d %v %v, want 429 with Retry-After", st, h, b)
	}
	if st, _, b := verify("198.51.100.82", code); st != 200 {
		t.Fatalf("right code from another IP: %d %v, want 200 (the refused verify counted nothing)", st, b)
	}
	for i := range 2 {
		if st, _, b := s.Do(t, "POST", "/auth/v1/captcha/data", "198.51.100.83", `{}`, nil); st != 200 {
			t.Fatalf("captcha image %d: %d %v", i+1, st, b)
		}
	}
	st, h, b = s.Do(t, "POST", "/auth/v1/captcha/data", "198.51.100.83", `{}`, nil)
	if st != 429 || b["error"] != "rate_limit_exceeded" || h["Retry-After"] == "" {
		t.Fatalf("third image from one IP with CAPTCHA_IP_HOURLY_LIMIT=2: %d %v %v, want 429 with Retry-After", st, h, b)
	}
}

func solveCaptcha(t *testing.T, s *apptest.Service, ip string) string {
	t.Helper()
	st, _, img := s.Do(t, "POST", "/auth/v1/captcha/data", ip, `{}`, nil)
	if st != 200 {
		t.Fatalf("captcha: %d %v", st, img)
	}
	var out struct {
		Captchas []struct{ Token, Answer string }
	}
	raw, _ := json.Marshal(s.DevOutbox())
	_ = json.Unmarshal(raw, &out)
	answer := ""
	for _, c := range out.Captchas {
		if c.Token == img["token"] {
			answer = c.Answer
		}
	}
	if st, _, b := s.Do(t, "POST", "/auth/v1/captcha/data/verify", ip, fmt.Sprintf(`{"token":%q,"key":%q}`, img["token"], "x"+answer), nil); st != 400 || b["error"] != "invalid_captcha" {
		t.Fatalf("wrong key: %d %v", st, b)
	}
	st, _, pass := s.Do(t, "POST", "/auth/v1/captcha/data/verify", ip, fmt.Sprintf(`{"token":%q,"key":%q}`, img["token"], strings.ToLower(answer)), nil)
	if st != 200 {
		t.Fatalf("solve: %d %v", st, pass)
	}
	if st, _, b := s.Do(t, "POST", "/auth/v1/captcha/data/verify", ip, fmt.Sprintf(`{"token":%q,"key":%q}`, img["token"], answer), nil); st != 400 || b["error"] != "captcha_used" {
		t.Fatalf("solved twice: %d %v", st, b)
	}
	return pass["captcha_token"].(string)
}

func TestDynamoDBUnavailable(t *testing.T) {
	testenv.Get(t, testenv.DynamoDB)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	s := apptest.NewWith(t, map[string]string{"VERIFICATION_TABLE": "codes", "USERS_TABLE": "users"},
		app.Options{AWSConfig: apptest.StaticAWS(), Endpoints: map[string]string{"dynamodb": dead}})
	for _, req := range []struct{ path, body string }{
		{sendPath, `{"target":"ANY","email":"a@example.com"}`},
		{sendPath, `{"target":"USER","phone_number":"+86 13800138000"}`},
		{verifyPath, `{"verification_id":"` + strings.Repeat("A", 64) + `","verification_code":"123456"}`},
		{"/auth/v1/captcha/data", `{}`},
	} {
		st, _, b := s.Do(t, "POST", req.path, "192.0.2.60", req.body, nil)
		if req.path == verifyPath {
			// An id this server never issued is refused before any call.
			if st != 400 {
				t.Fatalf("verify: %d %v", st, b)
			}
			continue
		}
		if st != 503 || b["error"] != "service_unavailable" {
			t.Fatalf("%s: %d %v, want 503 service_unavailable", req.path, st, b)
		}
	}
	if n := len(s.Outbox.Messages()); n != 0 {
		t.Fatalf("%d messages sent while DynamoDB was down", n)
	}
}

// sesFake answers SES v2 SendEmail with the given behaviour and keeps the
// codes it saw.
type sesFake struct {
	mode  atomic.Value // "ok", "reject", "hang"
	mu    sync.Mutex
	codes []string
	calls atomic.Int32
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

func (f *sesFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.codes = append(f.codes, sixDigits.FindString(string(b)))
	f.mu.Unlock()
	switch f.mode.Load() {
	case "reject":
		w.Header().Set("X-Amzn-ErrorType", "MessageRejected")
		w.WriteHeader(400)
		fmt.Fprint(w, `{"message":"Email address is not verified."}`)
	case "hang":
		<-r.Context().Done()
	default:
		fmt.Fprint(w, `{"MessageId":"m-1"}`)
	}
}

func (f *sesFake) lastCode() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.codes[len(f.codes)-1]
}

func sesService(t *testing.T, env map[string]string) (*apptest.Service, *sesFake) {
	t.Helper()
	fake := &sesFake{}
	fake.mode.Store("ok")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	env = with(env, "EMAIL_SENDER", "ses", "EMAIL_FROM", "no-reply@example.com")
	return apptest.NewDynamo(t, env, nil, app.Options{Endpoints: map[string]string{"sesv2": srv.URL}}), fake
}

func TestProviderRefusalGivesCooldownBackKeepsIPBudget(t *testing.T) {
	s, ses := sesService(t, with(noGate, "IP_HOURLY_LIMIT", "2"))
	ses.mode.Store("reject")
	ip := "192.0.2.70"
	st, _, b := s.Do(t, "POST", sendPath, ip, `{"target":"ANY","email":"bounce@example.com"}`, nil)
	if st != 502 || b["error"] != "send_failed" {
		t.Fatalf("rejected send: %d %v, want 502 send_failed", st, b)
	}
	if n := ses.calls.Load(); n != 1 {
		t.Fatalf("SES called %d times for a refusal, want 1 (no retry of a definite refusal)", n)
	}
	failedCode := ses.lastCode()
	ses.mode.Store("ok")
	st, _, sent := s.Do(t, "POST", sendPath, ip, `{"target":"ANY","email":"bounce@example.com"}`, nil)
	if st != 200 {
		t.Fatalf("immediate retry after send_failed: %d %v, want 200 (cooldown given back)", st, sent)
	}
	if failedCode != ses.lastCode() {
		// The failed send's code was removed with its record.
		if st, _, b := s.Do(t, "POST", verifyPath, ip, fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, sent["verification_id"], failedCode), nil); b["error"] != "invalid_verification_code" {
			t.Fatalf("failed send's code: %d %v", st, b)
		}
	}
	if st, _, b := s.Do(t, "POST", sendPath, ip, `{"target":"ANY","email":"other@example.com"}`, nil); st != 429 {
		t.Fatalf("third send from the IP: %d %v, want 429 (the failed send spent the IP budget)", st, b)
	}
}

func TestProviderTimeoutKeepsCodeAndCooldown(t *testing.T) {
	s, ses := sesService(t, noGate)
	ses.mode.Store("hang")
	st, _, sent := s.Do(t, "POST", sendPath, "192.0.2.80", `{"target":"ANY","email":"slow@example.com"}`, nil)
	if st != 200 {
		t.Fatalf("send with a provider timeout: %d %v, want 200 (outcome unknown)", st, sent)
	}
	if !strings.Contains(s.Stdout.String(), `"delivery_outcome_unknown":true`) {
		t.Fatal("the log does not say the outcome was unknown")
	}
	ses.mode.Store("ok")
	if st, _, b := s.Do(t, "POST", sendPath, "192.0.2.81", `{"target":"ANY","email":"slow@example.com"}`, nil); st != 429 {
		t.Fatalf("resend: %d %v, want 429 (cooldown kept)", st, b)
	}
	st, _, b := s.Do(t, "POST", verifyPath, "192.0.2.80", fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, sent["verification_id"], ses.lastCode()), nil)
	if st != 200 {
		t.Fatalf("verify the code whose delivery was unknown: %d %v", st, b)
	}
}

func TestChannelDisabled(t *testing.T) {
	s := apptest.New(t, map[string]string{"CHANNELS": "sms"})
	st, _, b := s.Do(t, "POST", sendPath, "192.0.2.90", `{"target":"ANY","email":"a@example.com"}`, map[string]string{"x-captcha-token": "forged"})
	if st != 403 || b["error"] != "channel_disabled" {
		t.Fatalf("email with CHANNELS=sms: %d %v, want 403 channel_disabled (before captcha_invalid)", st, b)
	}
	if st, _, b := s.Do(t, "POST", sendPath, "192.0.2.90", `{"target":"ANY","email":"bad"}`, nil); st != 400 || b["error"] != "invalid_email" {
		t.Fatalf("bad email on a disabled channel: %d %v, want invalid_email first", st, b)
	}
	// Nothing was spent: the IP can still send by SMS at once.
	if st, _, b := s.Do(t, "POST", sendPath, "192.0.2.90", `{"target":"ANY","phone_number":"+86 13800138000"}`, nil); st != 200 {
		t.Fatalf("sms: %d %v", st, b)
	}
}

func TestEmailWithoutIdentityInLambdaIsDisabled(t *testing.T) {
	s := apptest.NewDynamo(t, map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9", "HMAC_KEY": "dGVzdC1obWFjLWtleS10ZXN0LWhtYWMta2V5LXRlc3QtaG1hYw==", "SIGNING_KEY": apptest.SigningKeyPEM(t)}, nil, app.Options{})
	if st, _, b := s.Do(t, "POST", sendPath, "192.0.2.91", `{"target":"ANY","email":"a@example.com"}`, nil); st != 403 || b["error"] != "channel_disabled" {
		t.Fatalf("email in Lambda without EMAIL_FROM: %d %v, want 403 channel_disabled", st, b)
	}
	if s.DevOutbox != nil {
		t.Fatal("/dev/outbox is served in Lambda")
	}
}

func TestSMTPThroughMailpit(t *testing.T) {
	smtpAddr := testenv.Get(t, testenv.MailpitSMTP)
	api := testenv.Get(t, testenv.MailpitAPI)
	s := apptest.New(t, with(noGate, "EMAIL_SENDER", "smtp", "SMTP_URL", "smtp://"+smtpAddr, "EMAIL_FROM", "Verifykit <no-reply@example.com>"))
	to := fmt.Sprintf("smtp-%d@example.com", time.Now().UnixNano())
	st, _, sent := s.Do(t, "POST", sendPath, "192.0.2.100", fmt.Sprintf(`{"target":"ANY","email":%q,"locale":"en"}`, to), nil)
	if st != 200 {
		t.Fatalf("send: %d %v", st, sent)
	}
	var list struct {
		Messages []struct{ ID, Subject string }
	}
	getJSON(t, api+"/api/v1/search?query="+url.QueryEscape("to:"+to), &list)
	if len(list.Messages) != 1 {
		t.Fatalf("%d messages to %s in Mailpit", len(list.Messages), to)
	}
	var msg struct {
		From       struct{ Address string }
		To         []struct{ Address string }
		Subject    string
		Text, HTML string
	}
	getJSON(t, api+"/api/v1/message/"+list.Messages[0].ID, &msg)
	code := sixDigits.FindString(msg.Text)
	if msg.From.Address != "no-reply@example.com" || len(msg.To) != 1 || msg.To[0].Address != to || code == "" || !strings.Contains(msg.HTML, code) {
		t.Fatalf("message: from %q to %v subject %q code %q", msg.From.Address, msg.To, msg.Subject, code)
	}
	if st, _, b := s.Do(t, "POST", verifyPath, "192.0.2.100", fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, sent["verification_id"], code), nil); st != 200 {
		t.Fatalf("verify the emailed code: %d %v", st, b)
	}
}

// TestSMTPURLFromSecretsManager: with SMTP_URL_SECRET_ARN the SMTP URL is
// read from Secrets Manager, at the endpoint the options give (as the keys
// are), and the mail goes through the server it names.
func TestSMTPURLFromSecretsManager(t *testing.T) {
	smtpAddr := testenv.Get(t, testenv.MailpitSMTP)
	api := testenv.Get(t, testenv.MailpitAPI)
	sm := &secretsManagerFake{secret: "smtp://" + smtpAddr}
	srv := httptest.NewServer(sm)
	t.Cleanup(srv.Close)
	s := apptest.NewWith(t, with(noGate, "EMAIL_SENDER", "smtp", "EMAIL_FROM", "no-reply@example.com",
		"SMTP_URL_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:smtp-AbCdEf"),
		app.Options{AWSConfig: apptest.StaticAWS(), Endpoints: map[string]string{"secretsmanager": srv.URL}})
	if n := sm.count(); n != 1 {
		t.Fatalf("%d reads of the SMTP secret at start-up, want 1", n)
	}
	to := fmt.Sprintf("smtp-secret-%d@example.com", time.Now().UnixNano())
	if st, _, b := s.Do(t, "POST", sendPath, "192.0.2.101", fmt.Sprintf(`{"target":"ANY","email":%q}`, to), nil); st != 200 {
		t.Fatalf("send: %d %v", st, b)
	}
	var list struct{ Messages []struct{ ID string } }
	getJSON(t, api+"/api/v1/search?query="+url.QueryEscape("to:"+to), &list)
	if len(list.Messages) != 1 {
		t.Fatalf("%d messages to %s in Mailpit", len(list.Messages), to)
	}
}

func TestSMTPUnreachableIsSendFailedAndRetryable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	s := apptest.New(t, with(noGate, "EMAIL_SENDER", "smtp", "SMTP_URL", "smtp://"+closed, "EMAIL_FROM", "no-reply@example.com"))
	for i := 0; i < 2; i++ {
		// The second try must meet the same failure, not the cooldown.
		st, _, b := s.Do(t, "POST", sendPath, "192.0.2.101", `{"target":"ANY","email":"down@example.com"}`, nil)
		if st != 502 || b["error"] != "send_failed" {
			t.Fatalf("try %d: %d %v, want 502 send_failed", i+1, st, b)
		}
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", u, err)
	}
}
