package apptest

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/openapitest"
	"github.com/verifykit/verifykit/internal/verification"
)

// Expectation is one row of events/README.md: what a sample event answers.
type Expectation struct {
	File   string
	Status int
	Error  string
}

var row = regexp.MustCompile("^\\| `([^`]+\\.json)` \\|.*\\| (\\d{3}) \\| (`([a-z_]+)`|-) \\|$")

// Expectations reads the table of events/README.md, the one place that says
// what each sample event must answer; the handler, runtime-emulator and
// events-file tests all read it here. A row it cannot read, a file listed
// twice, a success with an error status, or an error name whose status is not
// the one httpapi answers fails the test: the table promises what it says.
func Expectations(t testing.TB, dir string) []Expectation {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Expectation
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		m := row.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("events/README.md: row not understood: %s", line)
			continue
		}
		status, _ := strconv.Atoi(m[2])
		e := Expectation{File: m[1], Status: status, Error: m[4]}
		if seen[e.File] {
			t.Errorf("events/README.md lists %s twice", e.File)
		}
		seen[e.File] = true
		if s, known := httpapi.StatusOf(verification.Kind(e.Error)); e.Error == "" && e.Status != 200 {
			t.Errorf("events/README.md: %s: status %d without an error name", e.File, e.Status)
		} else if e.Error != "" && (!known || s != e.Status) {
			t.Errorf("events/README.md: %s: %s with status %d, httpapi answers %d", e.File, e.Error, e.Status, s)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, file := range files {
		if !seen[filepath.Base(file)] {
			t.Errorf("events/README.md does not list %s", filepath.Base(file))
		}
	}
	if len(out) != len(files) || len(files) == 0 {
		t.Fatalf("events/README.md lists %d events, events/ has %d files", len(out), len(files))
	}
	return out
}

// CheckAnswer checks one event's answer against its expectation.
func CheckAnswer(t testing.TB, e Expectation, status int, body []byte) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("body %q is not JSON", body)
	}
	if status != e.Status {
		t.Fatalf("status %d, want %d (body %s)", status, e.Status, body)
	}
	if e.Error != "" {
		if m["error"] != e.Error {
			t.Fatalf("error %v, want %s", m["error"], e.Error)
		}
		return
	}
	switch {
	case strings.Contains(e.File, "send-"):
		if id, _ := m["verification_id"].(string); id == "" || m["expires_in"] != 600.0 || m["is_user"] == nil {
			t.Fatalf("send answer %s", body)
		}
		if strings.Contains(e.File, "user-existing") && m["is_user"] != true {
			t.Fatalf("is_user %v, want true", m["is_user"])
		}
	case strings.Contains(e.File, "captcha-data"):
		if m["type"] != "image" || !strings.HasPrefix(m["data"].(string), "data:image/png;base64,") {
			t.Fatalf("captcha answer %.200s", body)
		}
	case strings.Contains(e.File, "openapi"):
		if m["openapi"] != "3.1.0" || m["paths"] == nil {
			t.Fatalf("openapi document %.200s", body)
		}
	case strings.Contains(e.File, "jwks"):
		if keys, _ := m["keys"].([]any); len(keys) != 1 {
			t.Fatalf("jwks %s", body)
		}
	}
}

// CheckEventContract checks a sample event and the handler's answer to it
// against api/openapi.yaml, as Do does for the requests it serves. The
// request is read from the event as the handler reads it.
func CheckEventContract(t testing.TB, raw []byte, out any) {
	t.Helper()
	r, _, err := httpapi.ParseEvent(raw)
	if err != nil {
		t.Fatal(err)
	}
	x := openapitest.Exchange{Method: r.Method, Target: r.Path, RequestHeader: r.Header, RequestBody: r.Body}
	switch a := out.(type) {
	case events.APIGatewayProxyResponse:
		x.Status, x.ResponseHeader, x.ResponseBody = a.StatusCode, a.Headers, []byte(a.Body)
	case events.APIGatewayV2HTTPResponse:
		x.Status, x.ResponseHeader, x.ResponseBody = a.StatusCode, a.Headers, []byte(a.Body)
	default:
		t.Fatalf("answer of type %T", out)
	}
	openapitest.Require(t, x)
}
