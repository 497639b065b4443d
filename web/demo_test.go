package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/openapitest"
	"github.com/verifykit/verifykit/internal/testenv"
	"github.com/verifykit/verifykit/web"
)

var update = flag.Bool("update", false, "copy the demo page's screenshot to docs/demo.png")

// exchange is what the API server saw of one request.
type exchange struct {
	method, path, origin string
	request              []byte
	status               int
	body                 []byte
}

func (x exchange) String() string {
	return x.method + " " + x.path + " from " + x.origin + " " + string(x.request) + " -> " + strconv.Itoa(x.status) + " " + string(x.body)
}

// exchanges records every request the API server answers.
type exchanges struct {
	mu   sync.Mutex
	list []exchange
}

func (e *exchanges) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(req))
		rec := &statusWriter{ResponseWriter: w, status: 200}
		next.ServeHTTP(rec, r)
		e.mu.Lock()
		defer e.mu.Unlock()
		e.list = append(e.list, exchange{r.Method, r.URL.Path, r.Header.Get("Origin"), req, rec.status, rec.body})
	})
}

func (e *exchanges) from(origin, method string) []exchange {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []exchange
	for _, x := range e.list {
		if x.origin == origin && x.method == method {
			out = append(out, x)
		}
	}
	return out
}

type statusWriter struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }
func (s *statusWriter) Write(b []byte) (int, error) {
	s.body = append(s.body, b...)
	return s.ResponseWriter.Write(b)
}

// crossPage is a page of another origin. With mode=client it sends with the
// client module (a JSON POST, so the browser asks a preflight first); with
// mode=simple it sends what any page can send without asking (a no-cors
// text/plain POST, whose answer it cannot read). It writes the outcome into
// <body data-result>.
const crossPage = `<!doctype html><meta charset="utf-8"><title>cross-origin app</title>
<script type="module">
import { createClient } from '/verifykit.js';
const q = new URLSearchParams(location.search);
const done = (r) => { document.body.dataset.result = r; };
if (q.get('mode') === 'simple') {
  fetch(q.get('api') + '/auth/v1/verification', { method: 'POST', mode: 'no-cors',
    headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ target: 'ANY', email: q.get('email') }) })
    .then(() => done('sent'), () => done('network_error'));
} else {
  createClient({ baseURL: q.get('api') }).send({ email: q.get('email') })
    .then(() => done('ok'), (e) => done(e.error || String(e)));
}
</script><body></body>`

// TestDemoPageInChromium drives the demo page in a real headless Chromium
// (one browser for every case): send by email and by phone, read the code
// from the outbox, type it, see the token's claims; the message for an
// invalid phone number; the countdown on the disabled send button; the
// captcha gate solved with the outbox's answer; and the Origin rule for a
// page on another origin. Every exchange is checked against the contract.
func TestDemoPageInChromium(t *testing.T) {
	chromium := testenv.LookPath(t, "chromium")

	apiL := listen(t)
	otherL := listen(t)
	base := "http://" + apiL.Addr().String()
	_, otherPort, _ := net.SplitHostPort(otherL.Addr().String())
	listed := "http://" + otherL.Addr().String() // http://127.0.0.1:PORT
	unlisted := "http://localhost:" + otherPort  // the same server, another origin

	// The IP (127.0.0.1) is asked for a captcha once it has 4 accepted sends.
	s := apptest.New(t, map[string]string{
		"ADDR":                     apiL.Addr().String(),
		"CAPTCHA_IP_THRESHOLD":     "4",
		"CAPTCHA_TARGET_THRESHOLD": "0",
		"CORS_ALLOWED_ORIGINS":     listed,
	})
	seen := &exchanges{}
	serve(t, apiL, seen.wrap(openapitest.Middleware(t, s.Handler)))
	client, _ := web.Files.ReadFile("verifykit.js")
	serve(t, otherL, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/verifykit.js":
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(client)
		case "/cross.html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(crossPage))
		default:
			http.NotFound(w, r)
		}
	}))

	ctx := browser(t, chromium)
	shots := filepath.Join("..", "build", "demo")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	screenshot := func(t *testing.T, name string) {
		t.Helper()
		png := get(t, ctx, chromedp.FullScreenshot(100))
		path := filepath.Join(shots, name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", path)
	}
	codeTo := func(t *testing.T, to string) string {
		t.Helper()
		msgs := s.Outbox.Messages()
		for i := len(msgs) - 1; i >= 0; i-- {
			if msgs[i].To == to {
				return msgs[i].Code
			}
		}
		t.Fatalf("no message to %s in the outbox", to)
		return ""
	}

	// The Origin rule. Cases run in order, and the captcha gate opens on
	// the IP's 5th accepted send: two here, email and phone below, then the
	// captcha case.
	crossTests := []struct {
		name, origin, mode, email string
		wantPage                  string
		wantStatus                int    // of the POST the API saw; 0: none reached it
		wantError                 string // of that POST's answer
	}{
		{"listed origin, client module", listed, "client", "listed@example.com", "ok", 200, ""},
		{"listed origin, simple request", listed, "simple", "listed.simple@example.com", "sent", 200, ""},
		// The browser's preflight gets no CORS headers, so the POST never leaves.
		{"unlisted origin, client module", unlisted, "client", "unlisted@example.com", "network_error", 0, ""},
		// No preflight stops a simple request: the service must refuse it.
		{"unlisted origin, simple request", unlisted, "simple", "unlisted.simple@example.com", "sent", 403, "origin_not_allowed"},
	}
	for _, tt := range crossTests {
		t.Run(tt.name, func(t *testing.T) {
			run(t, ctx,
				chromedp.Navigate(tt.origin+"/cross.html?mode="+tt.mode+"&api="+base+"&email="+tt.email),
				chromedp.WaitReady(chromedp.CSS(`body[data-result]`)),
			)
			if got := get(t, ctx, chromedp.AttributeValue(chromedp.CSS(`body`), "data-result")).Value; got != tt.wantPage {
				t.Fatalf("the page on %s read %q, want %q", tt.origin, got, tt.wantPage)
			}
			var posts []exchange
			for _, x := range seen.from(tt.origin, "POST") {
				if strings.Contains(string(x.request), tt.email) {
					posts = append(posts, x)
				}
			}
			sent := false
			for _, m := range s.Outbox.Messages() {
				sent = sent || m.To == tt.email
			}
			switch {
			case tt.wantStatus == 0 && len(posts) != 0:
				t.Fatalf("a POST from %s reached the API: %v", tt.origin, posts)
			case tt.wantStatus != 0 && (len(posts) != 1 || posts[0].status != tt.wantStatus):
				t.Fatalf("the API answered the page on %s: %v, want one POST answered %d", tt.origin, posts, tt.wantStatus)
			case tt.wantError != "" && !strings.Contains(string(posts[0].body), `"error":"`+tt.wantError+`"`):
				t.Fatalf("answer %s, want error %s", posts[0].body, tt.wantError)
			case sent != (tt.wantStatus == 200):
				t.Fatalf("message to %s sent: %v, want %v", tt.email, sent, tt.wantStatus == 200)
			}
		})
	}

	sendAndVerify := func(t *testing.T, channel, address, sub, wantChannel string, shot string) {
		t.Helper()
		run(t, ctx,
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.ID("send")),
			setChannel(channel),
			chromedp.SendKeys(chromedp.ID("address"), address),
			chromedp.Click(chromedp.ID("send")),
			chromedp.WaitVisible(chromedp.ID("verify-form")),
		)
		// The button counts down the cooldown and stays disabled meanwhile.
		disabled := get(t, ctx, chromedp.Evaluate[bool](`document.getElementById('send').disabled`))
		label := get(t, ctx, chromedp.Text(chromedp.ID("send")))
		autocomplete := get(t, ctx, chromedp.AttributeValue(chromedp.ID("code"), "autocomplete")).Value
		if !disabled || !regexp.MustCompile(`^Resend in [1-9][0-9]* s$`).MatchString(label) {
			t.Fatalf("send button after a send: disabled %v, label %q; want disabled with a countdown", disabled, label)
		}
		if autocomplete != "one-time-code" {
			t.Fatalf("code input autocomplete %q, want one-time-code", autocomplete)
		}
		if shot != "" {
			screenshot(t, shot+"-sent")
		}
		run(t, ctx,
			chromedp.SendKeys(chromedp.ID("code"), codeTo(t, strings.ReplaceAll(address, " ", ""))),
			chromedp.Click(chromedp.ID("verify")),
			chromedp.WaitVisible(chromedp.ID("result")),
		)
		claimsText := get(t, ctx, chromedp.Text(chromedp.ID("claims")))
		var claims map[string]any
		if err := json.Unmarshal([]byte(claimsText), &claims); err != nil {
			t.Fatalf("claims %q: %v", claimsText, err)
		}
		if claims["sub"] != sub || claims["channel"] != wantChannel || claims["target"] != "ANY" {
			t.Fatalf("claims %v, want sub %s channel %s target ANY", claims, sub, wantChannel)
		}
		if shot != "" {
			screenshot(t, shot+"-verified")
		}
	}

	t.Run("email", func(t *testing.T) {
		sendAndVerify(t, "email", "Demo@Example.com", "demo@example.com", "email", "email")
	})
	t.Run("invalid phone number", func(t *testing.T) {
		run(t, ctx,
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.ID("send")),
			setChannel("phone"),
			chromedp.SendKeys(chromedp.ID("address"), "13800138000"),
			chromedp.Click(chromedp.ID("send")),
			chromedp.WaitVisible(chromedp.CSS(`#message[data-error="invalid_phone_number"]`)),
		)
		text := get(t, ctx, chromedp.Text(chromedp.ID("message")))
		if !strings.Contains(text, "+86") {
			t.Fatalf("message %q does not say how to write the number", text)
		}
		screenshot(t, "invalid-phone")
	})
	t.Run("phone", func(t *testing.T) {
		sendAndVerify(t, "phone", "+86 13800138000", "+8613800138000", "sms", "")
	})
	t.Run("captcha gate", func(t *testing.T) {
		run(t, ctx,
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.ID("send")),
			chromedp.SendKeys(chromedp.ID("address"), "gate@example.com"),
			chromedp.Click(chromedp.ID("send")),
			chromedp.WaitVisible(chromedp.ID("captcha")),
			chromedp.WaitVisible(chromedp.CSS(`#message[data-error="captcha_required"]`)),
		)
		src := get(t, ctx, chromedp.AttributeValue(chromedp.ID("captcha-image"), "src")).Value
		if !strings.HasPrefix(src, "data:image/png;base64,") {
			t.Fatalf("captcha image src %.40q", src)
		}
		screenshot(t, "captcha")
		// The local server's outbox lists each captcha with its answer.
		resp, err := http.Get(base + "/dev/outbox")
		if err != nil {
			t.Fatal(err)
		}
		var outbox struct {
			Captchas []struct{ Token, Answer string }
		}
		err = json.NewDecoder(resp.Body).Decode(&outbox)
		resp.Body.Close()
		if err != nil || len(outbox.Captchas) == 0 {
			t.Fatalf("outbox captchas: %v %v", outbox, err)
		}
		answer := outbox.Captchas[len(outbox.Captchas)-1].Answer
		run(t, ctx,
			chromedp.SendKeys(chromedp.ID("captcha-answer"), answer),
			chromedp.Click(chromedp.ID("captcha-submit")),
			chromedp.WaitVisible(chromedp.ID("verify-form")),
			chromedp.WaitNotVisible(chromedp.ID("captcha")),
		)
		run(t, ctx,
			chromedp.SendKeys(chromedp.ID("code"), codeTo(t, "gate@example.com")),
			chromedp.Click(chromedp.ID("verify")),
			chromedp.WaitVisible(chromedp.ID("result")),
		)
	})

	if *update {
		png, err := os.ReadFile(filepath.Join(shots, "email-verified.png"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "docs", "demo.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func setChannel(v string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](`(() => { const c = document.getElementById('channel'); c.value = ` + jsString(v) + `; c.dispatchEvent(new Event('change')); })()`)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// browser starts one headless Chromium for the test, with a fresh profile
// and nothing running in the background.
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(720, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first call starts the browser, without a deadline (one would
	// stop the browser with it).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs browser steps; the deadline only keeps a broken page from
// hanging the suite.
func run(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("chromium: %v", err)
	}
}

// get runs one browser action and returns its value.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return v
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func serve(t *testing.T, l net.Listener, h http.Handler) {
	t.Helper()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}
