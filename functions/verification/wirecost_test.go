package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/dynamo/dynamotest"
	"github.com/verifykit/verifykit/internal/testenv"
)

// TestWireCost measures what a send and a verify cost the whole process on
// the wire path: the built binary on DynamoDB Local (tables from
// template.yaml), emails through the SES stand-in and SMS through the load
// generator's own SNS stand-in, under a steady load from tools/loadgen, a
// separate process that reads the server's CPU (utime + stime) from /proc
// and divides it by the requests. It measures the same binary as a local
// HTTP server and as the Lambda function under the runtime emulator (one
// invoke at a time, per invoke), and for each fresh emulator start the time
// from the emulator's exec to the first successful send (the INIT phase is
// TestColdStart's: with AWS_LAMBDA_FUNCTION_MEMORY_SIZE set, the emulator
// does not report it here).
//
// Several binaries (BENCH_BINARIES="before=PATH,after=PATH", each built with
// the Lambda flags for this machine) are measured in interleaved rounds
// (BENCH_WIRE_ROUNDS, default 3), the order alternating, and each figure is
// given as the median and range over the rounds.
//
// A benchmark, not a test: it runs only with BENCH_WIRE=1 (make bench sets
// it), and asserts nothing about time. BENCH_LOADGEN names the built load
// generator; BENCH_WIRE_DURATION (default 5s) is each send run of the
// server and BENCH_WIRE_LAMBDA_DURATION (default 8s) of the function,
// BENCH_WIRE_VERIFIES (default 400) the verifies per run, BENCH_WIRE_CONNS
// (default 4) the local server's connections.
func TestWireCost(t *testing.T) {
	if os.Getenv("BENCH_WIRE") != "1" {
		t.Skip("a benchmark report, not a pass/fail test: set BENCH_WIRE=1 (make bench does)")
	}
	rie := testenv.Get(t, testenv.RIE)
	ddb := testenv.Get(t, testenv.DynamoDB)
	ses := testenv.Get(t, testenv.SES)
	loadgen := os.Getenv("BENCH_LOADGEN")
	if loadgen == "" {
		t.Fatal("BENCH_LOADGEN must name the built tools/loadgen")
	}
	type binary struct{ name, path string }
	var bins []binary
	for _, kv := range strings.Split(os.Getenv("BENCH_BINARIES"), ",") {
		name, path, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("BENCH_BINARIES: want name=path[,name=path], got %q", os.Getenv("BENCH_BINARIES"))
		}
		bins = append(bins, binary{name, path})
	}
	rounds := envInt("BENCH_WIRE_ROUNDS", 3)
	verifies := envInt("BENCH_WIRE_VERIFIES", 400)
	conns := envInt("BENCH_WIRE_CONNS", 4)
	duration := os.Getenv("BENCH_WIRE_DURATION")
	if duration == "" {
		duration = "5s"
	}
	// One invoke at a time is slower: a longer run gives as many ticks of
	// /proc's 10 ms CPU clock.
	lambdaDuration := os.Getenv("BENCH_WIRE_LAMBDA_DURATION")
	if lambdaDuration == "" {
		lambdaDuration = "8s"
	}

	_, tables := dynamotest.StartTables(t, ddb)
	sns := testenv.FreeAddr(t)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_ENDPOINT_URL_DYNAMODB=" + ddb,
		"AWS_ENDPOINT_URL_SESV2=" + ses,
		"AWS_ENDPOINT_URL_SNS=http://" + sns,
		"VERIFICATION_TABLE=" + tables["VerificationTable"],
		"USERS_TABLE=" + tables["UsersTable"],
		"EMAIL_SENDER=ses",
		"EMAIL_FROM=no-reply@example.com",
		"SMS_SENDER=sns",
		"IP_HOURLY_LIMIT=100",
		"CAPTCHA_IP_THRESHOLD=0",
		"CAPTCHA_TARGET_THRESHOLD=0",
		// The verifies' codes go by SMS to one prefix, and nobody verifies
		// them before the timed part: the SMS budget and the pumping breaker
		// would stop the set-up (the "before" binary ignores both).
		"SMS_HOURLY_BUDGET=1000000",
		"PUMPING_UNVERIFIED_LIMIT=1000000",
		"LOG_LEVEL=warn",
		"HMAC_KEY=cmllLXRlc3QtaG1hYy1rZXktcmllLXRlc3QtaG1hYy1rZXk=",
		"SIGNING_KEY=" + apptest.SigningKeyPEM(t),
	}
	// What Lambda gives an instance of the template's size; the function
	// derives its GC settings from it.
	lambdaEnv := append(slices.Clone(env), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256")

	type key2 struct{ bin, figure string }
	results := map[key2][]float64{}
	add := func(bin, figure string, v float64) {
		results[key2{bin, figure}] = append(results[key2{bin, figure}], v)
	}
	var figures []string
	addFigure := func(f string) {
		if !slices.Contains(figures, f) {
			figures = append(figures, f)
		}
	}
	record := func(bin, what string, r loadReport) {
		addFigure(what + ": CPU per request, ms")
		add(bin, what+": CPU per request, ms", r.CPUperReqMs)
		addFigure(what + ": requests/s")
		add(bin, what+": requests/s", r.PerSecond)
		addFigure(what + ": p50 latency, ms")
		add(bin, what+": p50 latency, ms", r.P50)
		if r.Requests == 0 || r.Errors > 0 || len(r.Status) != 1 || r.Status["200"] == 0 {
			t.Errorf("%s, %s: not every request succeeded: %+v", bin, what, r)
		}
	}

	for round := range rounds {
		order := slices.Clone(bins)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, b := range order {
			// The local HTTP server.
			port := testenv.FreeAddr(t)
			srv := exec.Command(b.path)
			srv.Env = append(slices.Clone(env), "ADDR="+port)
			var srvOut bytes.Buffer
			srv.Stdout, srv.Stderr = &srvOut, &srvOut
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { stopProcess(srv) }) // also when a check below fails
			waitListening(t, port, &srvOut)
			url := "http://" + port + "/auth/v1/verification"
			warmServer(t, url, &srvOut)
			pid := strconv.Itoa(srv.Process.Pid)
			record(b.name, "server, send (email)", runLoadgen(t, loadgen, "-url", url, "-pid", pid, "-c", strconv.Itoa(conns), "-d", duration))
			record(b.name, "server, verify", runLoadgen(t, loadgen, "-url", url, "-pid", pid, "-c", strconv.Itoa(conns), "-mode", "verify", "-n", strconv.Itoa(verifies), "-sns", sns))
			stopProcess(srv)

			// The Lambda function under the runtime emulator: a fresh start,
			// timed to the first successful send, then the load.
			f := startEmulator(t, rie, b.path, lambdaEnv)
			addFigure("Lambda: exec to first successful send, ms")
			add(b.name, "Lambda: exec to first successful send, ms", f.firstSend)
			pid = strconv.Itoa(f.bootstrapPID(t, b.path))
			record(b.name, "Lambda, send (email)", runLoadgen(t, loadgen, "-rie", "-url", f.url, "-pid", pid, "-d", lambdaDuration))
			record(b.name, "Lambda, verify", runLoadgen(t, loadgen, "-rie", "-url", f.url, "-pid", pid, "-mode", "verify", "-n", strconv.Itoa(verifies), "-sns", sns))
			f.stop()
		}
	}

	var out strings.Builder
	fmt.Fprintf(&out, "Whole-process cost on the wire path (DynamoDB Local, SES stand-in, SNS stand-in), %d interleaved rounds; median [min-max]:\n", rounds)
	fmt.Fprintf(&out, "  %-46s", "")
	for _, b := range bins {
		fmt.Fprintf(&out, " %-26s", b.name)
	}
	fmt.Fprintln(&out)
	for _, f := range figures {
		fmt.Fprintf(&out, "  %-46s", f)
		for _, b := range bins {
			fmt.Fprintf(&out, " %-26s", medianRange(results[key2{b.name, f}]))
		}
		fmt.Fprintln(&out)
	}
	t.Log("\n" + out.String())
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// medianRange is "M [lo-hi]" with a precision fitting the size.
func medianRange(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	s := slices.Clone(v)
	slices.Sort(s)
	f := func(x float64) string {
		switch {
		case x >= 100:
			return strconv.FormatFloat(x, 'f', 0, 64)
		case x >= 10:
			return strconv.FormatFloat(x, 'f', 1, 64)
		default:
			return strconv.FormatFloat(x, 'f', 3, 64)
		}
	}
	return f(s[len(s)/2]) + " [" + f(s[0]) + "-" + f(s[len(s)-1]) + "]"
}

// loadReport is what tools/loadgen -json prints.
type loadReport struct {
	Requests    int            `json:"requests"`
	PerSecond   float64        `json:"requests_per_s"`
	P50         float64        `json:"p50_ms"`
	Status      map[string]int `json:"status"`
	Errors      int            `json:"errors"`
	CPUperReqMs float64        `json:"cpu_ms_per_request"`
}

func runLoadgen(t *testing.T, loadgen string, args ...string) loadReport {
	t.Helper()
	cmd := exec.Command(loadgen, append(args, "-json")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("loadgen %v: %v\n%s", args, err, stderr.String())
	}
	var r loadReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("loadgen %v: %v: %s", args, err, out)
	}
	t.Logf("loadgen %s: %d requests, %.0f/s, p50 %.2f ms, server CPU %.3f ms per request, status %v",
		strings.Join(args, " "), r.Requests, r.PerSecond, r.P50, r.CPUperReqMs, r.Status)
	return r
}

func waitListening(t *testing.T, addr string, out *bytes.Buffer) {
	t.Helper()
	if err := testenv.WaitDial(addr, 5*time.Second, nil); err != nil {
		t.Fatalf("nothing listens on %s: %s", addr, out.String())
	}
}

// warmServer makes sends until one succeeds: the first calls of a fresh
// process (and a stand-in's cold paths) can take seconds, which a measured
// run must not include.
func warmServer(t *testing.T, url string, out *bytes.Buffer) {
	t.Helper()
	for i := range 20 {
		body := fmt.Sprintf(`{"target":"ANY","email":"warm-%d-%d@example.com"}`, time.Now().UnixNano(), i)
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatalf("no send succeeded on the fresh server: %s", out.String())
}

// stopProcess stops a started process and waits for it; a second call does
// nothing.
func stopProcess(cmd *exec.Cmd) {
	if cmd.ProcessState != nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// emulator is a started runtime emulator with its function.
type emulator struct {
	url       string
	out       *apptest.SafeBuffer
	cmd       *exec.Cmd
	firstSend float64 // ms from the emulator's exec to a 200 answer to a send
}

func (e *emulator) stop() { stopProcess(e.cmd) }

// startEmulator starts the emulator with the bootstrap and sends an email
// at once, retrying until the emulator listens, and times that first send.
func startEmulator(t *testing.T, rie, bootstrap string, env []string) *emulator {
	t.Helper()
	api, runtimeAPI := testenv.FreeAddr(t), testenv.FreeAddr(t)
	e := &emulator{url: "http://" + api + "/2015-03-31/functions/function/invocations", out: &apptest.SafeBuffer{}}
	e.cmd = exec.Command(rie, "--runtime-interface-emulator-address", api, "--runtime-api-address", runtimeAPI, bootstrap)
	e.cmd.Dir = filepath.Dir(bootstrap)
	e.cmd.Env = env
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	t.Cleanup(e.stop) // also when a check fails; the emulator stops its bootstrap
	event := restEvent("POST", "/auth/v1/verification", fmt.Sprintf(`{"target":"ANY","email":"first-%d@example.com"}`, time.Now().UnixNano()))
	start := time.Now()
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		resp, err := http.Post(e.url, "application/json", bytes.NewReader(event))
		if err == nil {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if !bytes.Contains(body.Bytes(), []byte(`"statusCode":200`)) {
				e.stop()
				t.Fatalf("first send: %s\n%s", body.String(), e.out.String())
			}
			e.firstSend = float64(time.Since(start).Microseconds()) / 1000
			break
		}
		if i == 2000 {
			e.stop()
			t.Fatalf("emulator did not answer: %v\n%s", err, e.out.String())
		}
		time.Sleep(time.Millisecond)
	}
	return e
}

// bootstrapPID finds the function process the emulator started: the child
// of the emulator running the bootstrap.
func (e *emulator) bootstrapPID(t *testing.T, bootstrap string) int {
	t.Helper()
	want, _ := filepath.Abs(bootstrap)
	dirs, _ := os.ReadDir("/proc")
	var found []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink("/proc/" + d.Name() + "/exe")
		if err != nil || exe != want {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(e.cmd.Process.Pid) {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one bootstrap process under the emulator (pid %d), found %v", e.cmd.Process.Pid, found)
	}
	return found[0]
}
