// Command loadgen puts the local server under a fixed-duration load of sends,
// each to a distinct email address (so no per-target limit ever refuses one),
// over N keep-alive connections, and reports requests per second, latency
// percentiles and the answers by status. `make bench` runs it against the
// built server; it is a separate process so that its own CPU is not counted
// as the server's.
//
// It speaks just enough HTTP/1.1 for this server (requests with a body,
// answers with Content-Length) over raw connections: net/http's client would
// cost the generator more CPU than the server spends per request, on a
// machine where both share two cores.
//
//	loadgen -url http://127.0.0.1:3000/auth/v1/verification -c 8 -d 10s
//
// What a request costs the server: with -pid, the server process's CPU
// (utime + stime from /proc/PID/stat) over the measured requests, divided by
// their number, is reported too. That is the whole process (the SDK, the
// HTTP client and server, the garbage collector), not just the handler.
//
// Each connection sends from its own loopback address (127.x.y.z), and moves
// to a fresh one every -per-ip requests, so a per-IP limit (at most 100 an
// hour on DynamoDB) never refuses a send.
//
// -mode verify measures successful verifies instead: it first sends -n codes
// by SMS (-channel sms is implied) to distinct numbers, receiving them on its
// own SNS stand-in (-sns ADDR, which the server's AWS_ENDPOINT_URL_SNS must
// name), then verifies each code once; only the verifies are measured.
//
// -rie makes -url the invoke URL of the Lambda runtime interface emulator:
// each request is wrapped in an API Gateway REST event (the source IP in its
// request context), one at a time, as the emulator allows; -pid then names
// the bootstrap the emulator started.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// Report is what a run measured; -json prints it.
type Report struct {
	URL         string         `json:"url"`
	Connections int            `json:"connections"`
	Duration    float64        `json:"duration_s"`
	Requests    int            `json:"requests"`
	PerSecond   float64        `json:"requests_per_s"`
	P50         float64        `json:"p50_ms"`
	P90         float64        `json:"p90_ms"`
	P99         float64        `json:"p99_ms"`
	Max         float64        `json:"max_ms"`
	Status      map[string]int `json:"status"`
	Errors      int            `json:"errors"`
	// With -pid: the server's CPU over the measured requests.
	CPUms        float64 `json:"cpu_ms,omitempty"`
	CPUperReqMs  float64 `json:"cpu_ms_per_request,omitempty"`
	CPUloadShare float64 `json:"cpu_share,omitempty"` // CPU time / wall time
}

func run() error {
	target := flag.String("url", "http://127.0.0.1:3000/auth/v1/verification", "send endpoint")
	conns := flag.Int("c", 8, "keep-alive connections, one request in flight on each")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	warm := flag.Duration("warmup", time.Second, "load before the measured duration, not counted")
	kind := flag.String("target", "ANY", "the send's target field")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	pid := flag.Int("pid", 0, "server process whose CPU (from /proc) is divided by the measured requests")
	mode := flag.String("mode", "send", "send, or verify (sends -n codes by SMS first, then measures their verifies)")
	channel := flag.String("channel", "email", "email or sms: what the sends ask for")
	snsAddr := flag.String("sns", "", "serve an SNS stand-in on this address that keeps the codes it is sent")
	n := flag.Int("n", 1000, "-mode verify: codes to send, then verify")
	perIP := flag.Int("per-ip", 50, "requests from one source address before the next")
	route := flag.String("route", "/auth/v1/verification", "-rie: the API path of the send route in the events")
	rie := flag.Bool("rie", false, "-url is the Lambda runtime emulator's invoke URL; requests go as API Gateway events, one at a time")
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("-url must be http://host:port/path, got %q", *target)
	}
	if *mode != "send" && *mode != "verify" {
		return fmt.Errorf("-mode must be send or verify, got %q", *mode)
	}
	if *mode == "verify" {
		*channel = "sms"
		if *snsAddr == "" {
			return errors.New("-mode verify needs -sns: the codes come back through it")
		}
	}
	if *rie {
		*conns = 1 // the emulator serves one invoke at a time
	}
	var codes *snsCodes
	if *snsAddr != "" {
		if codes, err = serveSNS(*snsAddr); err != nil {
			return err
		}
	}
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36) // addresses differ between runs too
	newWorker := func(c int) *worker {
		r := u.RequestURI()
		if *rie {
			r = *route
		}
		w := &worker{host: u.Host, route: r, url: *target, prefix: "lg" + run + "-" + strconv.Itoa(c) + "-",
			target: *kind, channel: *channel, id: c, perIP: max(*perIP, 1), rie: *rie}
		// Phone numbers and source addresses differ between runs too: the
		// server (DynamoDB) keeps a target's cooldown and an address's
		// hourly budget across runs. Each worker takes a random stretch.
		w.phoneBase = rand.IntN(99000000)
		w.ip = rand.IntN(65000)
		return w
	}

	if *mode == "verify" {
		return runVerify(newWorker, *conns, *n, codes, *pid, *target, *asJSON)
	}

	var (
		mu      sync.Mutex
		lat     []time.Duration
		status  = map[string]int{}
		errs    int
		lastErr error
		wg      sync.WaitGroup
	)
	start := time.Now()
	measureFrom := start.Add(*warm)
	end := measureFrom.Add(*dur)
	var cpuStart, cpuEnd time.Duration
	cpuRead := make(chan struct{})
	if *pid > 0 {
		if _, err := procCPU(*pid); err != nil {
			return err
		}
		// Read the CPU as the measured window opens and as it closes.
		go func() {
			defer close(cpuRead)
			time.Sleep(time.Until(measureFrom))
			cpuStart, _ = procCPU(*pid)
		}()
	} else {
		close(cpuRead)
	}
	for c := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorker(c)
			myLat := make([]time.Duration, 0, 1<<16)
			myStatus := map[string]int{}
			myErrs := 0
			var myErr error
			for n := 0; ; n++ {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				code, err := w.send(n, nil)
				d := time.Since(t0)
				if t0.Before(measureFrom) {
					if err != nil {
						w.close()
					}
					continue
				}
				if err != nil {
					myErrs++
					myErr = err
					w.close()
					continue
				}
				myLat = append(myLat, d)
				myStatus[strconv.Itoa(code)]++
			}
			w.close()
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, myLat...)
			for k, v := range myStatus {
				status[k] += v
			}
			errs += myErrs
			if myErr != nil {
				lastErr = myErr
			}
		}()
	}
	wg.Wait()
	<-cpuRead
	if *pid > 0 {
		cpuEnd, _ = procCPU(*pid)
	}

	slices.Sort(lat)
	r := Report{
		URL: *target, Connections: *conns, Duration: dur.Seconds(), Requests: len(lat),
		PerSecond: float64(len(lat)) / dur.Seconds(), Status: status, Errors: errs,
	}
	if *pid > 0 {
		r.setCPU(cpuEnd-cpuStart, time.Since(measureFrom))
	}
	if len(lat) > 0 {
		r.P50, r.P90, r.P99, r.Max = ms(pct(lat, 50)), ms(pct(lat, 90)), ms(pct(lat, 99)), ms(lat[len(lat)-1])
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	fmt.Printf("loadgen: POST %s, %d connections, %s measured after %s of warm-up\n", *target, *conns, *dur, *warm)
	r.print(lastErr)
	return nil
}

// print writes the report as text.
func (r *Report) print(lastErr error) {
	fmt.Printf("  requests  %d (%.0f/s)\n", r.Requests, r.PerSecond)
	fmt.Printf("  latency   p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms\n", r.P50, r.P90, r.P99, r.Max)
	keys := make([]string, 0, len(r.Status))
	for k := range r.Status {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, r.Status[k]))
	}
	fmt.Printf("  status    %s\n", strings.Join(parts, " "))
	if r.Errors > 0 {
		fmt.Printf("  errors    %d (last: %v)\n", r.Errors, lastErr)
	}
	if r.CPUms > 0 {
		fmt.Printf("  server CPU %.0f ms, %.3f ms per request (%.0f %% of one core)\n", r.CPUms, r.CPUperReqMs, 100*r.CPUloadShare)
	}
}

func (r *Report) setCPU(cpu, wall time.Duration) {
	r.CPUms = float64(cpu.Microseconds()) / 1000
	if r.Requests > 0 {
		r.CPUperReqMs = r.CPUms / float64(r.Requests)
	}
	r.CPUloadShare = cpu.Seconds() / wall.Seconds()
}

func pct(sorted []time.Duration, p int) time.Duration {
	k := (len(sorted)*p + 99) / 100
	return sorted[max(k-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// worker is one keep-alive connection with one request in flight.
type worker struct {
	host, route, url, prefix, target, channel string
	id, perIP, phoneBase                      int
	rie                                       bool
	sentEvents                                int

	conn   net.Conn
	r      *bufio.Reader
	req    []byte
	body   []byte
	answer []byte // the last answer's body
	sent   int    // requests on this source address
	ip     int    // source addresses used
	client *http.Client
}

func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

// sourceIP is this worker's current source address: 127.<1+id>.x.y, a new
// one every perIP requests.
func (w *worker) sourceIP() string {
	return "127." + strconv.Itoa(1+w.id%250) + "." + strconv.Itoa(w.ip/254%256) + "." + strconv.Itoa(1+w.ip%254)
}

// phone is the n-th distinct mainland China mobile number of this worker.
func (w *worker) phone(n int) string {
	return "+86138" + fmt.Sprintf("%08d", (w.phoneBase+n)%100000000)
}

// send posts the n-th send of this worker (or, with verify set, that verify
// body) and returns the answer's status; the answer's body is in w.answer.
func (w *worker) send(n int, verify []byte) (int, error) {
	if verify != nil {
		w.body = append(w.body[:0], verify...)
	} else {
		w.body = append(w.body[:0], `{"target":"`...)
		w.body = append(w.body, w.target...)
		if w.channel == "sms" {
			w.body = append(w.body, `","phone_number":"`...)
			w.body = append(w.body, w.phone(n)...)
			w.body = append(w.body, `"}`...)
		} else {
			w.body = append(w.body, `","email":"`...)
			w.body = append(w.body, w.prefix...)
			w.body = strconv.AppendInt(w.body, int64(n), 10)
			w.body = append(w.body, `@example.com"}`...)
		}
	}
	if w.sent >= w.perIP {
		w.close()
		w.ip, w.sent = w.ip+1, 0
	}
	w.sent++
	path := w.route
	if verify != nil {
		path = verifyPath(w.route)
	}
	if w.rie {
		return w.invoke(path)
	}
	if w.conn == nil {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(w.sourceIP())}}
		c, err := d.Dial("tcp", w.host)
		if err != nil {
			return 0, err
		}
		w.conn, w.r = c, bufio.NewReaderSize(c, 4096)
	}
	w.req = append(w.req[:0], "POST "...)
	w.req = append(w.req, path...)
	w.req = append(w.req, " HTTP/1.1\r\nHost: "...)
	w.req = append(w.req, w.host...)
	w.req = append(w.req, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	w.req = strconv.AppendInt(w.req, int64(len(w.body)), 10)
	w.req = append(w.req, "\r\n\r\n"...)
	w.req = append(w.req, w.body...)
	if _, err := w.conn.Write(w.req); err != nil {
		return 0, err
	}
	return w.readResponse()
}

// verifyPath is the verify route beside the send route.
func verifyPath(sendPath string) string { return strings.TrimSuffix(sendPath, "/") + "/verify" }

// invoke sends the request as an API Gateway REST event to the runtime
// emulator and returns the status and body of the proxy answer.
func (w *worker) invoke(path string) (int, error) {
	if w.client == nil {
		w.client = &http.Client{Timeout: 30 * time.Second}
	}
	w.sentEvents++
	event, _ := json.Marshal(map[string]any{
		"resource": path, "path": path, "httpMethod": "POST",
		"headers": map[string]string{"Content-Type": "application/json"},
		"requestContext": map[string]any{
			"resourcePath": path, "httpMethod": "POST", "stage": "v1",
			"requestId": "lg-" + w.prefix + strconv.Itoa(w.sentEvents),
			"identity":  map[string]any{"sourceIp": "10." + w.sourceIP()[4:]},
		},
		"body": string(w.body), "isBase64Encoded": false,
	})
	resp, err := w.client.Post(w.url, "application/json", bytes.NewReader(event))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var answer struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(raw, &answer); err != nil || answer.StatusCode == 0 {
		return 0, fmt.Errorf("not a proxy answer: %.200s", raw)
	}
	w.answer = append(w.answer[:0], answer.Body...)
	return answer.StatusCode, nil
}

// readResponse reads one answer: status line, headers, a Content-Length body.
func (w *worker) readResponse() (int, error) {
	line, err := w.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	closing := false
	for {
		h, err := w.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, errors.New("chunked answers are not supported")
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			closing = true
		}
	}
	if length < 0 {
		return 0, errors.New("answer without Content-Length")
	}
	if cap(w.answer) < length {
		w.answer = make([]byte, length)
	}
	w.answer = w.answer[:length]
	if _, err := io.ReadFull(w.r, w.answer); err != nil {
		return 0, err
	}
	if closing {
		w.close()
	}
	return code, nil
}

// procCPU is the user+system CPU time the process has used so far, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s: the kernel's
// USER_HZ on Linux, whatever its internal tick rate).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count the fields after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * (time.Second / userHZ), nil
}

const userHZ = 100

// snsCodes is a stand-in for SNS's Publish (the Query protocol) that keeps
// the code of each SMS by phone number.
type snsCodes struct {
	mu    sync.Mutex
	codes map[string]string
}

var codeRE = regexp.MustCompile(`[0-9]{6}`)

func serveSNS(addr string) (*snsCodes, error) {
	s := &snsCodes{codes: map[string]string{}}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	go func() {
		_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			if r.Form.Get("Action") != "Publish" || r.Form.Get("PhoneNumber") == "" {
				http.Error(w, "unexpected request", http.StatusBadRequest)
				return
			}
			s.mu.Lock()
			s.codes[r.Form.Get("PhoneNumber")] = codeRE.FindString(r.Form.Get("Message"))
			s.mu.Unlock()
			w.Header().Set("Content-Type", "text/xml")
			_, _ = io.WriteString(w, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-1</MessageId></PublishResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></PublishResponse>`)
		}))
	}()
	return s, nil
}

// code waits (up to 5 s) for the code sent to phone.
func (s *snsCodes) code(phone string) (string, bool) {
	deadline := time.Now().Add(5 * time.Second)
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if c, ok := s.codes[phone]; ok {
			delete(s.codes, phone)
			return c, true
		}
		if time.Now().After(deadline) {
			return "", false
		}
		s.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		s.mu.Lock()
	}
}

// runVerify sends n codes by SMS over conns workers, then verifies each
// once over the same workers and reports the verifies.
func runVerify(newWorker func(int) *worker, conns, n int, codes *snsCodes, pid int, target string, asJSON bool) error {
	type pending struct{ id, phone string }
	per := (n + conns - 1) / conns
	workers := make([]*worker, conns)
	bodies := make([][][]byte, conns)
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for c := range conns {
		workers[c] = newWorker(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := workers[c]
			var sent []pending
			for i := range per {
				status, err := w.send(i, nil)
				if err != nil || status != 200 {
					errs[c] = fmt.Errorf("send %d: status %d, %v: %s", i, status, err, w.answer)
					return
				}
				var a struct {
					ID string `json:"verification_id"`
				}
				if err := json.Unmarshal(w.answer, &a); err != nil {
					errs[c] = fmt.Errorf("send %d: %v", i, err)
					return
				}
				sent = append(sent, pending{a.ID, w.phone(i)})
			}
			for _, p := range sent {
				code, ok := codes.code(p.phone)
				if !ok {
					errs[c] = fmt.Errorf("no SMS came to %s", p.phone)
					return
				}
				b, _ := json.Marshal(map[string]string{"verification_id": p.id, "verification_code": code})
				bodies[c] = append(bodies[c], b)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	var cpuStart time.Duration
	if pid > 0 {
		var err error
		if cpuStart, err = procCPU(pid); err != nil {
			return err
		}
	}
	start := time.Now()
	lats := make([][]time.Duration, conns)
	statuses := make([]map[string]int, conns)
	var failed []error
	var mu sync.Mutex
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := workers[c]
			statuses[c] = map[string]int{}
			for _, b := range bodies[c] {
				t0 := time.Now()
				status, err := w.send(0, b)
				if err != nil {
					mu.Lock()
					failed = append(failed, err)
					mu.Unlock()
					w.close()
					continue
				}
				lats[c] = append(lats[c], time.Since(t0))
				statuses[c][strconv.Itoa(status)]++
			}
			w.close()
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	var cpuEnd time.Duration
	if pid > 0 {
		cpuEnd, _ = procCPU(pid)
	}
	var lat []time.Duration
	status := map[string]int{}
	for c := range conns {
		lat = append(lat, lats[c]...)
		for k, v := range statuses[c] {
			status[k] += v
		}
	}
	slices.Sort(lat)
	r := Report{
		URL: verifyPath(target), Connections: conns, Duration: wall.Seconds(), Requests: len(lat),
		PerSecond: float64(len(lat)) / wall.Seconds(), Status: status, Errors: len(failed),
	}
	if len(lat) > 0 {
		r.P50, r.P90, r.P99, r.Max = ms(pct(lat, 50)), ms(pct(lat, 90)), ms(pct(lat, 99)), ms(lat[len(lat)-1])
	}
	if pid > 0 {
		r.setCPU(cpuEnd-cpuStart, wall)
	}
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	fmt.Printf("loadgen: %d verifies of codes sent by SMS just before, %d connections\n", len(lat), conns)
	var last error
	if len(failed) > 0 {
		last = failed[len(failed)-1]
	}
	r.print(last)
	return nil
}
