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
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
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
}

func run() error {
	target := flag.String("url", "http://127.0.0.1:3000/auth/v1/verification", "send endpoint")
	conns := flag.Int("c", 8, "keep-alive connections, one request in flight on each")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	warm := flag.Duration("warmup", time.Second, "load before the measured duration, not counted")
	kind := flag.String("target", "ANY", "the send's target field")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	flag.Parse()

	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("-url must be http://host:port/path, got %q", *target)
	}
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36) // addresses differ between runs too

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
	for c := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{host: u.Host, path: u.RequestURI(), prefix: "lg" + run + "-" + strconv.Itoa(c) + "-", target: *kind}
			myLat := make([]time.Duration, 0, 1<<16)
			myStatus := map[string]int{}
			myErrs := 0
			var myErr error
			for n := 0; ; n++ {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				code, err := w.send(n)
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

	slices.Sort(lat)
	r := Report{
		URL: *target, Connections: *conns, Duration: dur.Seconds(), Requests: len(lat),
		PerSecond: float64(len(lat)) / dur.Seconds(), Status: status, Errors: errs,
	}
	if len(lat) > 0 {
		r.P50, r.P90, r.P99, r.Max = ms(pct(lat, 50)), ms(pct(lat, 90)), ms(pct(lat, 99)), ms(lat[len(lat)-1])
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	fmt.Printf("loadgen: POST %s, %d connections, %s measured after %s of warm-up\n", *target, *conns, *dur, *warm)
	fmt.Printf("  requests  %d (%.0f/s)\n", r.Requests, r.PerSecond)
	fmt.Printf("  latency   p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms\n", r.P50, r.P90, r.P99, r.Max)
	keys := make([]string, 0, len(status))
	for k := range status {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, status[k]))
	}
	fmt.Printf("  status    %s\n", strings.Join(parts, " "))
	if errs > 0 {
		fmt.Printf("  errors    %d (last: %v)\n", errs, lastErr)
	}
	return nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	k := (len(sorted)*p + 99) / 100
	return sorted[max(k-1, 0)]
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// worker is one keep-alive connection with one request in flight.
type worker struct {
	host, path, prefix, target string

	conn net.Conn
	r    *bufio.Reader
	req  []byte
	body []byte
}

func (w *worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

// send posts the n-th send of this worker and returns the answer's status.
func (w *worker) send(n int) (int, error) {
	if w.conn == nil {
		c, err := net.Dial("tcp", w.host)
		if err != nil {
			return 0, err
		}
		w.conn, w.r = c, bufio.NewReaderSize(c, 4096)
	}
	w.body = append(w.body[:0], `{"target":"`...)
	w.body = append(w.body, w.target...)
	w.body = append(w.body, `","email":"`...)
	w.body = append(w.body, w.prefix...)
	w.body = strconv.AppendInt(w.body, int64(n), 10)
	w.body = append(w.body, `@example.com"}`...)

	w.req = append(w.req[:0], "POST "...)
	w.req = append(w.req, w.path...)
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
	if _, err := w.r.Discard(length); err != nil {
		return 0, err
	}
	if closing {
		w.close()
	}
	return code, nil
}
