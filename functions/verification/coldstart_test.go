//go:build bench

package main

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/dynamo/dynamotest"
	"github.com/verifykit/verifykit/internal/testenv"
)

// TestColdStart measures the cold start of the Lambda bootstrap as the
// runtime emulator reports it, over several fresh starts, with the
// environment a Lambda instance has against DynamoDB Local. One more start
// runs with GODEBUG=inittrace=1 to show which package initialisers cost
// most, and how much of the start is main's own work.
//
// The figure is the emulator's "INIT REPORT(durationMs: X)": the INIT phase,
// from the bootstrap's start until it asks for its first event. This
// emulator starts the function lazily inside the first invoke, and its
// REPORT line's "Init Duration" stays at a fraction of a millisecond whatever
// the function does (the init time shows up in that invoke's Duration
// instead), so it is printed but not used.
//
// A benchmark, not a test: it is built only with the bench tag (make bench
// runs it). BENCH_BOOTSTRAP names a bootstrap built with the Lambda flags
// for this machine (make bench builds one); without it, one is built here.
// BENCH_COLDSTART_RUNS sets the number of starts (default 7).
func TestColdStart(t *testing.T) {
	rie := testenv.Get(t, testenv.RIE)
	ddb := testenv.Get(t, testenv.DynamoDB)
	runs := 7
	if v, err := strconv.Atoi(os.Getenv("BENCH_COLDSTART_RUNS")); err == nil && v > 0 {
		runs = v
	}
	bootstrap := os.Getenv("BENCH_BOOTSTRAP")
	if bootstrap == "" {
		bootstrap = buildBootstrap(t, "-ldflags=-s -w -buildid=")
	}
	event, err := os.ReadFile("../../events/rest-jwks.json")
	if err != nil {
		t.Fatal(err)
	}

	_, tables := dynamotest.StartTables(t, ddb)
	// What a Lambda instance's environment holds (the runtime adds its own
	// AWS_LAMBDA_* variables), with the secrets given literally: in AWS they
	// come from Secrets Manager, a call the emulator cannot stand in for.
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_SESSION_TOKEN=test",
		"AWS_ENDPOINT_URL_DYNAMODB=" + ddb,
		"AWS_ENDPOINT_URL_SESV2=http://127.0.0.1:9",
		"AWS_ENDPOINT_URL_SNS=http://127.0.0.1:9",
		"VERIFICATION_TABLE=" + tables["VerificationTable"],
		"USERS_TABLE=" + tables["UsersTable"],
		"EMAIL_FROM=no-reply@example.com",
		"HMAC_KEY=cmllLXRlc3QtaG1hYy1rZXktcmllLXRlc3QtaG1hYy1rZXk=",
		"SIGNING_KEY=" + apptest.SigningKeyPEM(t),
	}

	var inits, reported []float64
	for i := range runs {
		log := coldStart(t, rie, bootstrap, env, event)
		ms, ok := initPhaseOf(log)
		if !ok {
			t.Fatalf("start %d: no INIT REPORT in the emulator's output:\n%s", i, log)
		}
		inits = append(inits, ms)
		if ms, ok := initDurationOf(log); ok {
			reported = append(reported, ms)
		}
	}
	// GODEBUG for the bootstrap only: the emulator is a Go program too.
	wrapper := traceWrapper(t, bootstrap)
	var traced []string
	for range 3 {
		traced = append(traced, coldStart(t, rie, wrapper, env, event))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "Cold start of %s (%d fresh starts under the runtime emulator, first event events/rest-jwks.json)\n", filepath.Base(bootstrap), runs)
	fmt.Fprintf(&b, "  INIT phase (INIT REPORT durationMs): %s\n", summary(inits))
	fmt.Fprintf(&b, "  (the REPORT line's Init Duration: %s)\n", summary(reported))
	if fi, err := os.Stat(bootstrap); err == nil {
		fmt.Fprintf(&b, "  bootstrap size: %.1f MB (%d bytes)\n", float64(fi.Size())/1e6, fi.Size())
	}
	writeInitTrace(&b, traced)
	t.Log("\n" + b.String())
}

// buildBootstrap builds a bootstrap of the test's own with extra build
// flags (the Makefile's -ldflags here; the emulator tests share one built
// without them, sharedBootstrap in rie_test.go).
func buildBootstrap(t *testing.T, extra ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootstrap")
	if err := compileBootstrap(out, extra...); err != nil {
		t.Fatal(err)
	}
	return out
}

// summary is "median X ms, min Y ms, max Z ms (all: ...)".
func summary(ms []float64) string {
	if len(ms) == 0 {
		return "none reported"
	}
	s := slices.Clone(ms)
	slices.Sort(s)
	return fmt.Sprintf("median %.2f ms, min %.2f ms, max %.2f ms (all: %v)", s[len(s)/2], s[0], s[len(s)-1], ms)
}

// traceWrapper is a bootstrap that runs the real one with GODEBUG=inittrace=1.
func traceWrapper(t *testing.T, bootstrap string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bootstrap-inittrace")
	script := "#!/bin/sh\nGODEBUG=inittrace=1 exec '" + bootstrap + "'\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// coldStart starts a fresh emulator with the bootstrap, invokes it once with
// event, stops it and returns everything both printed.
func coldStart(t *testing.T, rie, bootstrap string, env []string, event []byte) string {
	t.Helper()
	out := &apptest.SafeBuffer{}
	url, stop := runRIE(t, rie, bootstrap, env, out)
	defer stop()
	resp, err := http.Post(url, "application/json", bytes.NewReader(event))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`"statusCode":200`)) {
		t.Fatalf("invoke: %s\n%s", body, out.String())
	}
	// The emulator prints its REPORT line as the invoke ends.
	for i := 0; i < 200 && !initDurationRE.MatchString(out.String()); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	return out.String()
}

// init internal/bytealg @0.008 ms, 0 ms clock, 0 bytes, 0 allocs
var initTraceRE = regexp.MustCompile(`init (\S+) @([0-9.]+) ms, ([0-9.]+) ms clock, ([0-9]+) bytes, ([0-9]+) allocs`)

// writeInitTrace summarises GODEBUG=inittrace=1 starts (medians over them):
// the costliest package initialisers, their total, and what is left of the
// INIT phase for main (configuration, clients, keys, handler) and the
// process start.
func writeInitTrace(b *strings.Builder, logs []string) {
	type pkg struct {
		name          string
		clock         []float64
		bytes, allocs int64
	}
	pkgs := map[string]*pkg{}
	var sums, ends, phases []float64
	for _, log := range logs {
		var sum, end float64
		for _, m := range initTraceRE.FindAllStringSubmatch(log, -1) {
			p := pkgs[m[1]]
			if p == nil {
				p = &pkg{name: m[1]}
				pkgs[m[1]] = p
			}
			at, _ := strconv.ParseFloat(m[2], 64)
			clock, _ := strconv.ParseFloat(m[3], 64)
			p.bytes, _ = strconv.ParseInt(m[4], 10, 64)
			p.allocs, _ = strconv.ParseInt(m[5], 10, 64)
			p.clock = append(p.clock, clock)
			sum += clock
			end = max(end, at+clock)
		}
		if ms, ok := initPhaseOf(log); ok && end > 0 {
			sums, ends, phases = append(sums, sum), append(ends, end), append(phases, ms)
		}
	}
	if len(phases) == 0 {
		fmt.Fprintf(b, "  (no inittrace output)\n")
		return
	}
	med := func(v []float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[len(s)/2]
	}
	fmt.Fprintf(b, "  with GODEBUG=inittrace=1 (medians of %d starts; tracing slows a start down): INIT phase %.2f ms;\n", len(phases), med(phases))
	fmt.Fprintf(b, "  %d package initialisers ran %.2f ms in all and were done %.2f ms after the process started, so main\n", len(pkgs), med(sums), med(ends))
	fmt.Fprintf(b, "  (configuration, AWS clients, keys, handler) and the process start took the remaining ~%.2f ms\n", med(phases)-med(ends))
	list := make([]*pkg, 0, len(pkgs))
	for _, p := range pkgs {
		list = append(list, p)
	}
	slices.SortFunc(list, func(x, y *pkg) int {
		if c := cmp.Compare(med(y.clock), med(x.clock)); c != 0 {
			return c
		}
		return strings.Compare(x.name, y.name)
	})
	fmt.Fprintf(b, "  costliest initialisers:\n")
	for _, p := range list[:min(12, len(list))] {
		fmt.Fprintf(b, "    %-64s %7.2f ms %10d bytes %7d allocs\n", p.name, med(p.clock), p.bytes, p.allocs)
	}
}
