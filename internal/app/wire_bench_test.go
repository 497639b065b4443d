package app_test

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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/testenv"
)

// The in-process cost of a request on the wire path: the handler with the
// DynamoDB store on DynamoDB Local, emails through the SES stand-in and SMS
// through a local SNS fake. ns/op is mostly the stand-ins' time; the figure
// that counts is cpu-µs/op, this process's user+system CPU per request
// (getrusage), which includes the AWS SDK's middleware, serialising,
// signing, the HTTP client and the garbage collector. `make bench` runs
// these beside the whole-process figures of the built binary under load
// (functions/verification TestWireCost) and takes a CPU profile of them.
// They skip without the stand-ins (scripts/with-standins.sh sets them).

// wireEnv is the configuration of the wire-path benchmarks: SES and SNS
// senders, the highest per-IP limit, no captcha gate. The verifies' codes
// go by SMS to one prefix, and nobody verifies them before the timed loop,
// so the SMS budget and the pumping breaker are raised out of the way.
func wireEnv() map[string]string {
	return map[string]string{
		"EMAIL_SENDER": "ses", "EMAIL_FROM": "no-reply@example.com", "SMS_SENDER": "sns",
		"IP_HOURLY_LIMIT": "100", "CAPTCHA_IP_THRESHOLD": "0", "CAPTCHA_TARGET_THRESHOLD": "0",
		"SMS_HOURLY_BUDGET": "1000000", "PUMPING_UNVERIFIED_LIMIT": "1000000",
	}
}

// instantEnv is wireEnv with table names, for the instant fakes (no
// DynamoDB Local to make tables in).
func instantEnv() map[string]string {
	env := wireEnv()
	env["VERIFICATION_TABLE"], env["USERS_TABLE"] = "verification", "users"
	return env
}

// wireApp builds the service on DynamoDB Local with the SES stand-in and an
// SNS fake, whose captured codes (by phone number) the returned func reads.
func wireApp(b *testing.B) (*apptest.Service, func(phone string) string) {
	b.Helper()
	ses := testenv.Get(b, testenv.SES)
	sns := newSNSCapture()
	srv := httptest.NewServer(sns)
	b.Cleanup(srv.Close)
	s := apptest.NewDynamo(b, wireEnv(), nil, app.Options{Endpoints: map[string]string{"sesv2": ses, "sns": srv.URL}})
	// Warm up: the stand-ins' first calls (a JVM's and a Node process's
	// cold paths) can take longer than an attempt may, and a benchmark's
	// first round has one iteration.
	ctx := context.Background()
	for i := range 20 {
		benchServe(ctx, s.App, sendRoute, "10.254.0."+strconv.Itoa(i), fmt.Sprintf(`{"target":"ANY","email":"warm%d-%d@example.com"}`, wireRun(), i))
	}
	return s, sns.code
}

// snsCapture answers SNS Publish (the Query protocol) and keeps the code of
// each message by phone number.
type snsCapture struct {
	mu    sync.Mutex
	codes map[string]string
}

func newSNSCapture() *snsCapture { return &snsCapture{codes: map[string]string{}} }

var wireCodeRE = regexp.MustCompile(`[0-9]{6}`)

func (s *snsCapture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if r.Form.Get("Action") != "Publish" {
		http.Error(w, "unexpected request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.codes[r.Form.Get("PhoneNumber")] = wireCodeRE.FindString(r.Form.Get("Message"))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprint(w, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>`)
}

func (s *snsCapture) code(phone string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.codes[phone]
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration) {
	b.ReportMetric(float64((processCPU()-since).Microseconds())/float64(b.N), "cpu-µs/op")
}

// wireRun makes a unique prefix for this run's addresses: DynamoDB Local
// keeps its tables for the whole `make bench`, and a benchmark runs several
// times.
func wireRun() int { return int(time.Now().UnixNano()/1e6) % 100000 }

// BenchmarkWireSendEmail is one accepted email send (target ANY) on the wire
// path: one TransactWriteItems, one concurrent GetItem, one SES SendEmail.
func BenchmarkWireSendEmail(b *testing.B) {
	a, _ := wireApp(b)
	run := wireRun()
	reqs := benchSendRequests(b.N, func(i int) string {
		return fmt.Sprintf(`{"target":"ANY","email":"w%d-%d@example.com"}`, run, i)
	})
	serveTimed(b, a, reqs)
}

// serveTimed serves reqs, each of which must answer 200, as the timed part
// of a benchmark, and reports the allocations and the process's CPU per
// request.
func serveTimed(b *testing.B, s *apptest.Service, reqs []*httpapi.Request) {
	b.Helper()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for i, r := range reqs {
		if resp := s.Handler.Serve(ctx, r); resp.Status != 200 {
			b.Fatalf("request %d: %d %s\n%s", i, resp.Status, resp.Body, s.Stdout)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkWireVerify is one successful verify on the wire path (a GetItem,
// then one TransactWriteItems; an ES256 token signed). The SMS sends that provide the codes
// run before the timer starts.
func BenchmarkWireVerify(b *testing.B) {
	a, codeOf := wireApp(b)
	run := wireRun()
	ctx := context.Background()
	bodies := make([]string, b.N)
	for i := range bodies {
		phone := fmt.Sprintf("+86138%03d%05d", run%1000, i)
		resp := benchServe(ctx, a.App, sendRoute, benchIP(i), `{"target":"ANY","phone_number":"`+phone+`"}`)
		var r struct {
			ID string `json:"verification_id"`
		}
		if err := json.Unmarshal(resp.Body, &r); err != nil || resp.Status != 200 {
			b.Fatalf("send %d: %d %s\n%s", i, resp.Status, resp.Body, a.Stdout)
		}
		bodies[i] = benchVerifyBody(r.ID, codeOf(phone))
	}
	reqs := benchSendRequests(b.N, func(i int) string { return bodies[i] })
	for _, r := range reqs {
		r.Path = verifyRoute
	}
	serveTimed(b, a, reqs)
}

// instantAWS answers every DynamoDB call with an empty success, SES's
// SendEmail with a message id and SNS's Publish as SNS does, at once and
// from another process (this test binary again, running
// TestInstantAWSHelper): what is left of a send's cost in this process's
// getrusage is the service's and the AWS SDK's own work (middleware,
// endpoint, signing, serialising, the HTTP client), without a stand-in's
// noise and without the fakes' own serving. It is where the SDK client
// options are profiled and compared (`make bench` keeps its profile).
//
// The returned func is the number of connections the fakes accepted: with
// keep-alive working, a handful, whatever the number of sends.
func instantAWS(tb testing.TB) (map[string]string, func() int64) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestInstantAWSHelper$")
	cmd.Env = append(os.Environ(), instantAWSEnv+"=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var urls map[string]string
	if err := json.NewDecoder(out).Decode(&urls); err != nil {
		tb.Fatalf("instant AWS fakes: %v", err)
	}
	control := urls["control"]
	delete(urls, "control")
	conns := func() int64 {
		resp, err := http.Get(control)
		if err != nil {
			tb.Fatal(err)
		}
		defer resp.Body.Close()
		var n int64
		if err := json.NewDecoder(resp.Body).Decode(&n); err != nil {
			tb.Fatal(err)
		}
		return n
	}
	return urls, conns
}

const instantAWSEnv = "VERIFYKIT_INSTANT_AWS"

// TestInstantAWSHelper is not a test but the process that serves
// instantAWS's fakes: it prints their URLs as one JSON line and serves
// until it is killed. Run without instantAWS, it skips.
func TestInstantAWSHelper(t *testing.T) {
	if os.Getenv(instantAWSEnv) != "1" {
		t.Skip("the instant AWS fakes' process, started by instantAWS")
	}
	var conns atomic.Int64
	handlers := map[string]http.Handler{
		"dynamodb": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			_, _ = io.WriteString(w, "{}") // no X-Amz-Crc32: the client does not check it
		}),
		"sesv2": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"MessageId":"m-1"}`)
		}),
		"sns": newSNSCapture(),
		"control": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_ = json.NewEncoder(w).Encode(conns.Load())
		}),
	}
	urls := map[string]string{}
	for name, h := range handlers {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h}
		if name != "control" {
			srv.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					conns.Add(1)
				}
			}
		}
		go func() { _ = srv.Serve(l) }()
		urls[name] = "http://" + l.Addr().String()
	}
	if err := json.NewEncoder(os.Stdout).Encode(urls); err != nil {
		t.Fatal(err)
	}
	select {}
}

// BenchmarkInstantSendEmail is an accepted email send through the DynamoDB
// store and the SES sender, both talking to instant in-process fakes.
func BenchmarkInstantSendEmail(b *testing.B) {
	endpoints, conns := instantAWS(b)
	s := apptest.NewWith(b, instantEnv(), app.Options{AWSConfig: apptest.StaticAWS(), Endpoints: endpoints})
	serveTimed(b, s, benchSendRequests(b.N, benchEmailBody))
	b.ReportMetric(float64(conns())/float64(b.N), "dials/op")
}

// BenchmarkInstantFloor is the floor under BenchmarkInstantSendEmail: the
// same three requests, byte for byte as the SDK made them for one send,
// sent again by a plain net/http client (the service's transport settings)
// to the same out-of-process fakes, the transaction beside the user lookup
// and then the email, as a send does. No SDK, no service: what the HTTP
// client, the kernel and the Go runtime cost on this host for a send's
// calls, which no client of these APIs can go below.
func BenchmarkInstantFloor(b *testing.B) {
	endpoints, _ := instantAWS(b)
	rec := &recordingClient{c: http.DefaultClient}
	cfg := apptest.StaticAWS()
	cfg.HTTPClient = rec
	s := apptest.NewWith(b, instantEnv(), app.Options{AWSConfig: cfg, Endpoints: endpoints})
	if resp := s.Handler.Serve(context.Background(), benchSendRequests(1, benchEmailBody)[0]); resp.Status != 200 {
		b.Fatalf("send: %d %s", resp.Status, resp.Body)
	}
	var txn, lookup, email *recorded
	for i, r := range rec.reqs {
		switch target := r.header.Get("X-Amz-Target"); {
		case target == "DynamoDB_20120810.TransactWriteItems":
			txn = &rec.reqs[i]
		case target == "DynamoDB_20120810.GetItem":
			lookup = &rec.reqs[i]
		case strings.HasSuffix(r.url, "/v2/email/outbound-emails"):
			email = &rec.reqs[i]
		}
	}
	if len(rec.reqs) != 3 || txn == nil || lookup == nil || email == nil {
		b.Fatalf("a send made %d calls, want TransactWriteItems, GetItem and SendEmail", len(rec.reqs))
	}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 4 * 64, MaxIdleConnsPerHost: 64, WriteBufferSize: 16 << 10,
	}}
	do := func(r *recorded) {
		req, err := http.NewRequest(http.MethodPost, r.url, bytes.NewReader(r.body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header = r.header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%s: %d", r.url, resp.StatusCode)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	for range b.N {
		done := make(chan struct{})
		go func() {
			defer close(done)
			do(lookup)
		}()
		do(txn)
		<-done
		do(email)
	}
	reportCPU(b, cpu)
}

// recordingClient keeps every request the SDK makes, body included, and
// sends it on.
type recordingClient struct {
	c    *http.Client
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	url    string
	header http.Header
	body   []byte
}

func (c *recordingClient) Do(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, recorded{r.URL.String(), r.Header.Clone(), body})
	c.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	return c.c.Do(r)
}
