package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/dynamo/dynamotest"
	"github.com/verifykit/verifykit/internal/testenv"
	"github.com/verifykit/verifykit/internal/token"
)

// TestRuntimeEmulator runs the built bootstrap as Lambda runs it: under the
// AWS Lambda Runtime Interface Emulator, against DynamoDB Local (tables from
// template.yaml), aws-ses-v2-local and an SNS wire fake, and posts every
// events/*.json to it, one at a time. The REST and HTTP API events run
// against separate tables because pairs of them send to the same target.
// Then a full send → email → verify → token round trip.
func TestRuntimeEmulator(t *testing.T) {
	env := emulatorEnv(t)
	expect := apptest.Expectations(t, "../../events")

	for _, kind := range []string{"rest-", "http-"} {
		t.Run(strings.TrimSuffix(kind, "-"), func(t *testing.T) {
			fn := env.startFunction(t)
			for _, e := range expect {
				if !strings.HasPrefix(e.File, kind) {
					continue
				}
				raw, err := os.ReadFile(filepath.Join("../../events", e.File))
				if err != nil {
					t.Fatal(err)
				}
				status, body := fn.invoke(t, raw)
				t.Run(e.File, func(t *testing.T) { apptest.CheckAnswer(t, e, status, body) })
			}
			t.Logf("cold start: %s", fn.initReport())
		})
	}

	t.Run("send email, read it from SES, verify", func(t *testing.T) {
		fn := env.startFunction(t)
		to := fmt.Sprintf("rie-%d@example.com", time.Now().UnixNano())
		status, body := fn.invoke(t, restEvent("POST", "/auth/v1/verification", fmt.Sprintf(`{"target":"ANY","email":%q,"locale":"en"}`, to)))
		if status != 200 {
			t.Fatalf("send: %d %s", status, body)
		}
		var sent struct {
			VerificationID string `json:"verification_id"`
		}
		_ = json.Unmarshal(body, &sent)
		code := codeFromSES(t, env.ses, to)
		status, body = fn.invoke(t, restEvent("POST", "/auth/v1/verification/verify", fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, sent.VerificationID, code)))
		if status != 200 {
			t.Fatalf("verify: %d %s", status, body)
		}
		var verified struct {
			Token string `json:"verification_token"`
		}
		_ = json.Unmarshal(body, &verified)
		_, jwks := fn.invoke(t, restEvent("GET", "/auth/v1/.well-known/jwks.json", ""))
		v, err := token.NewValidator(jwks, "verifykit", "verifykit")
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Validate(verified.Token, time.Now())
		if err != nil || c.Subject != to || c.Channel != "email" {
			t.Fatalf("token: %+v, %v", c, err)
		}
		// Single use, across the real runtime and DynamoDB.
		if status, _ := fn.invoke(t, restEvent("POST", "/auth/v1/verification/verify", fmt.Sprintf(`{"verification_id":%q,"verification_code":%q}`, sent.VerificationID, code))); status != 400 {
			t.Fatalf("second verify: %d, want 400", status)
		}
		// What the function printed (its JSON logs and metrics, as CloudWatch
		// would keep them) holds the target only masked, and never the code,
		// the token, the id or a key.
		logs := fn.output()
		for _, secret := range []string{code, verified.Token, sent.VerificationID, to, "cmllLXRlc3QtaG1hYy1r"} {
			if strings.Contains(logs, secret) {
				t.Errorf("the function's output holds %q", secret)
			}
		}
		if !strings.Contains(logs, `"target":"r***@example.com"`) {
			t.Errorf("no masked target in the function's log lines:\n%s", logs)
		}
	})
}

// TestMain removes the shared bootstrap's directory after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// shared is the bootstrap the emulator tests share: built once per test
// binary run, by the first test that asks for it, into a directory TestMain
// removes.
var shared struct {
	once      sync.Once
	dir, path string
	err       error
}

// sharedBootstrap returns the shared bootstrap, building it on the first
// call; a failed build fails every test that asks for it.
func sharedBootstrap(t *testing.T) string {
	t.Helper()
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "verification-bootstrap-")
		if shared.err != nil {
			return
		}
		shared.path = filepath.Join(shared.dir, "bootstrap")
		shared.err = compileBootstrap(shared.path)
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.path
}

// compileBootstrap builds the function to out with the Makefile's Lambda
// build flags (extra adds more), for this machine's architecture: the
// emulator runs what it is given, and an arm64 binary cannot run here.
func compileBootstrap(out string, extra ...string) error {
	args := append([]string{"build", "-tags", "lambda.norpc", "-trimpath"}, extra...)
	cmd := exec.Command("go", append(args, "-o", out, ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, b)
	}
	return nil
}

// rieEnv is what the emulator tests start functions with: the emulator, the
// shared bootstrap, DynamoDB Local, aws-ses-v2-local and an SNS wire fake.
type rieEnv struct {
	rie, bootstrap, ddb, ses, sns string
}

// emulatorEnv reads the stand-ins' endpoints (skipping the test without
// them), gets the shared bootstrap and starts an SNS fake for the test.
func emulatorEnv(t *testing.T) rieEnv {
	t.Helper()
	e := rieEnv{
		rie: testenv.Get(t, testenv.RIE),
		ddb: testenv.Get(t, testenv.DynamoDB),
		ses: testenv.Get(t, testenv.SES),
	}
	e.bootstrap = sharedBootstrap(t)
	e.sns = snsFake(t).URL
	return e
}

// startFunction starts the bootstrap under the emulator against fresh
// tables; extra environment entries ("NAME=value") override the defaults.
func (e rieEnv) startFunction(t *testing.T, extra ...string) *function {
	t.Helper()
	return startFunction(t, e.rie, e.bootstrap, e.ddb, e.ses, e.sns, extra...)
}

// function is one bootstrap under the emulator; it is the io.Writer the
// emulator and the function print to.
type function struct {
	url string
	apptest.SafeBuffer
}

// output is everything the emulator and the function printed so far.
func (f *function) output() string { return f.String() }

// initReport is what the emulator says of the function's start: the INIT
// phase (INIT REPORT durationMs) and the REPORT line's Init Duration, which
// this emulator leaves near zero because it starts the function inside the
// first invoke (BENCHMARKS.md §5).
func (f *function) initReport() string {
	log := f.output()
	phase, ok1 := initPhaseOf(log)
	dur, ok2 := initDurationOf(log)
	if !ok1 || !ok2 {
		return "not reported"
	}
	return fmt.Sprintf("INIT phase %.2f ms, Init Duration %.2f ms", phase, dur)
}

// invoke posts one event and returns the proxy response's status and body.
// The emulator answers 200 for everything; the function's answer is inside.
func (f *function) invoke(t *testing.T, event []byte) (int, []byte) {
	t.Helper()
	resp, err := http.Post(f.url, "application/json", bytes.NewReader(event))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		StatusCode   int    `json:"statusCode"`
		Body         string `json:"body"`
		ErrorMessage string `json:"errorMessage"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.StatusCode == 0 {
		t.Fatalf("not a proxy response: %s\nfunction log:\n%s", raw, f.output())
	}
	return out.StatusCode, []byte(out.Body)
}

// startFunction starts the bootstrap under the emulator against fresh
// tables; extra environment entries ("NAME=value") override the defaults.
func startFunction(t *testing.T, rie, bootstrap, ddb, ses, sns string, extra ...string) *function {
	t.Helper()
	client, tables := dynamotest.StartTables(t, ddb)
	_, err := client.PutItem(context.Background(), &dynamodb.PutItemInput{
		TableName: aws.String(tables["UsersTable"]),
		Item:      map[string]types.AttributeValue{"identity": &types.AttributeValueMemberS{Value: "existing@example.com"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_REGION=us-east-1",
		// What Lambda sets for the template's LoggingConfig (LogFormat: JSON).
		"AWS_LAMBDA_LOG_FORMAT=JSON",
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_ENDPOINT_URL_DYNAMODB=" + ddb,
		"AWS_ENDPOINT_URL_SESV2=" + ses,
		"AWS_ENDPOINT_URL_SNS=" + sns,
		"VERIFICATION_TABLE=" + tables["VerificationTable"],
		"USERS_TABLE=" + tables["UsersTable"],
		"EMAIL_FROM=no-reply@example.com",
		"HMAC_KEY=cmllLXRlc3QtaG1hYy1rZXktcmllLXRlc3QtaG1hYy1rZXk=",
		"SIGNING_KEY=" + apptest.SigningKeyPEM(t),
	}
	env = withEnv(env, extra...)
	f := &function{}
	var stop func()
	f.url, stop = runRIE(t, rie, bootstrap, env, f)
	t.Cleanup(stop)
	return f
}

// withEnv returns env with each "NAME=value" of extra replacing the entry
// of that name, or added; "NAME=" alone removes it.
func withEnv(env []string, extra ...string) []string {
	out := slices.Clone(env)
	for _, e := range extra {
		name, value, _ := strings.Cut(e, "=")
		out = slices.DeleteFunc(out, func(x string) bool { return strings.HasPrefix(x, name+"=") })
		if value != "" {
			out = append(out, e)
		}
	}
	return out
}

// runRIE starts the runtime interface emulator with the bootstrap and env,
// its output going to out, and waits until it listens. It returns the
// invocation URL and a stop function (SIGINT, which also ends the bootstrap;
// a kill after 5 s).
func runRIE(t *testing.T, rie, bootstrap string, env []string, out io.Writer) (url string, stop func()) {
	t.Helper()
	api, runtimeAPI := testenv.FreeAddr(t), testenv.FreeAddr(t)
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", api, "--runtime-api-address", runtimeAPI, bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop = func() { stopProcess(cmd) }
	if err := testenv.WaitDial(api, 2*time.Second, nil); err != nil {
		stop()
		t.Fatalf("emulator did not listen on %s", api)
	}
	return "http://" + api + "/2015-03-31/functions/function/invocations", stop
}

// snsFake answers the SDK's Publish as SNS does (the Query protocol).
func snsFake(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.Form.Get("Action") != "Publish" || !strings.HasPrefix(r.Form.Get("PhoneNumber"), "+") {
			http.Error(w, "unexpected request", 400)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprint(w, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func restEvent(method, path, body string) []byte {
	e := map[string]any{
		"resource":   path,
		"path":       path,
		"httpMethod": method,
		"headers":    map[string]string{"Content-Type": "application/json"},
		"body":       body,
		"requestContext": map[string]any{
			"requestId": fmt.Sprintf("rie-%d", time.Now().UnixNano()),
			"stage":     "v1",
			"identity":  map[string]string{"sourceIp": "192.0.2.10"},
		},
	}
	b, _ := json.Marshal(e)
	return b
}

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

// codeFromSES reads the latest email to `to` back from aws-ses-v2-local.
func codeFromSES(t *testing.T, ses, to string) string {
	t.Helper()
	resp, err := http.Get(ses + "/store")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var store struct {
		Emails []struct {
			Destination struct{ To []string } `json:"destination"`
			Body        struct{ Text string } `json:"body"`
		} `json:"emails"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&store); err != nil {
		t.Fatal(err)
	}
	for i := len(store.Emails) - 1; i >= 0; i-- {
		e := store.Emails[i]
		if len(e.Destination.To) == 1 && e.Destination.To[0] == to {
			if m := codeRE.FindStringSubmatch(e.Body.Text); m != nil {
				return m[1]
			}
		}
	}
	t.Fatalf("no email to %s in SES", to)
	return ""
}

// TestRuntimeEmulatorDeadline: with a function timeout of 3 s and an SES
// endpoint that accepts connections and never answers, a send still
// answers before Lambda would stop the function (no "Task timed out"): the
// provider call ends at the invocation's deadline minus the reserves, the
// outcome is unknown (the request went out), so the answer is 200 with a
// verification_id and the code and cooldown are kept; the log line says so.
func TestRuntimeEmulatorDeadline(t *testing.T) {
	fn := emulatorEnv(t).startFunction(t,
		"AWS_LAMBDA_FUNCTION_TIMEOUT=3",
		"AWS_ENDPOINT_URL_SESV2=http://"+hangingListener(t))

	// A first send by SMS (its provider answers) starts the function and
	// warms DynamoDB Local, whose first transactions on a busy machine can
	// take seconds of the 3 s by themselves.
	// On a loaded machine the first ones may still run out of DynamoDB
	// time (503), so up to ten, each to its own number.
	for i := 0; ; i++ {
		status, body := fn.invoke(t, restEvent("POST", "/auth/v1/verification", fmt.Sprintf(`{"target":"ANY","phone_number":"+86138001380%02d"}`, i)))
		if status == 200 {
			break
		}
		if i == 9 {
			t.Fatalf("warm-up sends by SMS: last %d %s", status, body)
		}
	}
	to := fmt.Sprintf("deadline-%d@example.com", time.Now().UnixNano())
	start := time.Now()
	status, body := fn.invoke(t, restEvent("POST", "/auth/v1/verification", fmt.Sprintf(`{"target":"ANY","email":%q}`, to)))
	t.Logf("answered after %v with a 3 s function timeout", time.Since(start).Round(time.Millisecond))
	var sent struct {
		VerificationID string `json:"verification_id"`
	}
	if err := json.Unmarshal(body, &sent); status != 200 || err != nil || sent.VerificationID == "" {
		t.Fatalf("send to a provider that never answers: %d %s, want 200 with a verification_id\nfunction log:\n%s", status, body, fn.output())
	}
	// The cooldown was kept: the message may still arrive.
	if status, body := fn.invoke(t, restEvent("POST", "/auth/v1/verification", fmt.Sprintf(`{"target":"ANY","email":%q}`, to))); status != 429 {
		t.Fatalf("second send: %d %s, want 429 (cooldown kept after an unknown outcome)", status, body)
	}
	logs := fn.output()
	if strings.Contains(logs, "Task timed out") {
		t.Fatalf("the function ran out of time:\n%s", logs)
	}
	if !strings.Contains(logs, `"delivery_outcome_unknown":true`) {
		t.Fatalf("the log does not say the outcome is unknown:\n%s", logs)
	}
}

// hangingListener accepts TCP connections and never answers (nor closes
// them until the test ends): a provider that takes the request and stalls.
func hangingListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// TestRuntimeEmulatorRefusesUnsharedKeys: in Lambda, a start without
// KEYS_SECRET_ARN and without both literal keys fails at init, naming them,
// rather than serving with keys no other instance has.
func TestRuntimeEmulatorRefusesUnsharedKeys(t *testing.T) {
	env := emulatorEnv(t)
	for _, drop := range [][]string{{"HMAC_KEY=", "SIGNING_KEY="}, {"SIGNING_KEY="}} {
		t.Run(strings.Join(drop, ","), func(t *testing.T) {
			fn := env.startFunction(t, drop...)
			resp, err := http.Post(fn.url, "application/json", bytes.NewReader(restEvent("GET", "/auth/v1/.well-known/jwks.json", "")))
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(raw, []byte(`"statusCode"`)) {
				t.Fatalf("the function served without shared keys: %s", raw)
			}
			// The emulator prints the function's stderr as it exits.
			var logs string
			for i := 0; i < 200; i++ {
				if logs = fn.output(); strings.Contains(logs, "KEYS_SECRET_ARN") {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			for _, name := range []string{"KEYS_SECRET_ARN", "HMAC_KEY", "SIGNING_KEY"} {
				if !strings.Contains(logs, name) {
					t.Errorf("the init failure does not name %s:\n%s", name, logs)
				}
			}
		})
	}
}

// The emulator's report lines, read by initReport and by TestColdStart
// (make bench).
var (
	initDurationRE = regexp.MustCompile(`Init Duration: ([0-9.]+) ms`)
	initPhaseRE    = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)
)

func initDurationOf(log string) (float64, bool) { return firstFloat(initDurationRE, log) }
func initPhaseOf(log string) (float64, bool)    { return firstFloat(initPhaseRE, log) }

func firstFloat(re *regexp.Regexp, s string) (float64, bool) {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}
