package notify

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/testenv"
	"github.com/verifykit/verifykit/internal/verification"
)

func TestParseSMTPURL(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want SMTPServer
	}{
		{"remote smtp requires STARTTLS", "smtp://user:pass@mail.example.com:587",
			SMTPServer{Host: "mail.example.com", Port: 587, Security: SMTPStartTLS, Username: "user", Password: "pass"}},
		{"default port 587", "smtp://user:pass@mail.example.com",
			SMTPServer{Host: "mail.example.com", Port: 587, Security: SMTPStartTLS, Username: "user", Password: "pass"}},
		{"port 25 to a remote host still needs STARTTLS", "smtp://mail.example.com:25",
			SMTPServer{Host: "mail.example.com", Port: 25, Security: SMTPStartTLS}},
		{"smtps implicit TLS, default port 465", "smtps://apikey:s%40cret%2F1@smtp.example.com",
			SMTPServer{Host: "smtp.example.com", Port: 465, Security: SMTPImplicitTLS, Username: "apikey", Password: "s@cret/1"}},
		{"localhost may be plain", "smtp://LocalHost:1025",
			SMTPServer{Host: "localhost", Port: 1025, Security: SMTPPlain}},
		{"127.0.0.1 may be plain, with credentials", "smtp://u:p@127.0.0.1:1025/",
			SMTPServer{Host: "127.0.0.1", Port: 1025, Security: SMTPPlain, Username: "u", Password: "p"}},
		{"::1 may be plain", "smtp://[::1]:25",
			SMTPServer{Host: "::1", Port: 25, Security: SMTPPlain}},
		{"other loopback addresses need TLS", "smtp://127.0.0.2:25",
			SMTPServer{Host: "127.0.0.2", Port: 25, Security: SMTPStartTLS}},
		{"smtps to loopback stays TLS", "smtps://127.0.0.1:1465",
			SMTPServer{Host: "127.0.0.1", Port: 1465, Security: SMTPImplicitTLS}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSMTPURL(tt.raw)
			if err != nil {
				t.Fatalf("ParseSMTPURL(%q): %v", tt.raw, err)
			}
			if got != tt.want {
				t.Errorf("ParseSMTPURL(%q) = %#v, want %#v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestParseSMTPURLRefusals(t *testing.T) {
	const secret = "hunter2secret"
	tests := []struct{ name, raw string }{
		{"empty", ""},
		{"http scheme", "http://u:" + secret + "@mail.example.com"},
		{"no scheme", "mail.example.com:587"},
		{"no host", "smtp://u:" + secret + "@:587"},
		{"bad port", "smtp://u:" + secret + "@mail.example.com:smtp"},
		{"port out of range", "smtp://u:" + secret + "@mail.example.com:70000"},
		{"invalid URL", "smtp://u:" + secret + "@mail example.com:%zz"},
		{"user without password", "smtp://user@mail.example.com"},
		{"password without user", "smtp://:" + secret + "@mail.example.com"},
		{"query", "smtp://u:" + secret + "@mail.example.com?tls=off"},
		{"path", "smtp://u:" + secret + "@mail.example.com/x"},
		{"opaque", "smtp:u:" + secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSMTPURL(tt.raw)
			if err == nil {
				t.Fatalf("ParseSMTPURL(%q): got nil error, want refusal", tt.raw)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestSMTPServerStringHidesPassword(t *testing.T) {
	s, err := ParseSMTPURL("smtps://user:hunter2@mail.example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []string{s.String(), fmt.Sprint(s), fmt.Sprintf("%v", s)} {
		if strings.Contains(got, "hunter2") || !strings.Contains(got, "smtps://user:") || !strings.Contains(got, "mail.example.com:465") {
			t.Errorf("got %q, want the URL without its password", got)
		}
	}
}

func TestNewSMTPRefusals(t *testing.T) {
	tests := []struct{ name, url, from string }{
		{"bad URL", "http://x", "noreply@example.com"},
		{"no from", "smtp://127.0.0.1:1025", ""},
		{"bad from", "smtp://127.0.0.1:1025", "noreply"},
	}
	for _, tt := range tests {
		if _, err := NewSMTP(newTemplates(t, ""), SMTPOptions{URL: tt.url, From: tt.from}); err == nil {
			t.Errorf("%s: got nil error, want refusal", tt.name)
		}
	}
}

// fakeSMTP is a scripted SMTP server on loopback: it speaks just enough of
// the protocol for go-mail and answers the end of DATA with dataReply, or
// not at all when hang is set. It records sessions and AUTH PLAIN logins.
type fakeSMTP struct {
	smtpScript
	addr     string
	sessions atomic.Int32
	mu       sync.Mutex
	logins   []string // "user:pass"
	messages []string
}

// smtpScript is how a fakeSMTP behaves.
type smtpScript struct {
	dataReply string // e.g. "250 ok", "554 rejected", "451 try later"
	hangData  bool   // never answer the end of DATA
	hangMail  bool   // never answer MAIL FROM
}

func newFakeSMTP(t *testing.T, script smtpScript) *fakeSMTP {
	f := &fakeSMTP{smtpScript: script}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	var wg sync.WaitGroup
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range conns {
			c.Close() // ends a session the client left hanging
		}
		f.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.sessions.Add(1)
			f.mu.Lock()
			conns = append(conns, conn)
			f.mu.Unlock()
			wg.Go(func() { f.serve(conn) })
		}
	})
	return f
}

func (f *fakeSMTP) serve(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	reply := func(s string) { _, _ = fmt.Fprintf(conn, "%s\r\n", s) }
	reply("220 fake ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			reply("250-fake\r\n250-AUTH PLAIN\r\n250 8BITMIME")
		case "HELO", "NOOP", "RSET", "RCPT":
			reply("250 ok")
		case "AUTH":
			mech, ir, _ := strings.Cut(arg, " ")
			b, _ := base64.StdEncoding.DecodeString(ir)
			parts := strings.Split(string(b), "\x00")
			if mech != "PLAIN" || len(parts) != 3 {
				reply("504 unsupported")
				continue
			}
			f.mu.Lock()
			f.logins = append(f.logins, parts[1]+":"+parts[2])
			f.mu.Unlock()
			reply("235 ok")
		case "MAIL":
			if f.hangMail {
				_, _ = drain(r)
				return
			}
			reply("250 ok")
		case "DATA":
			reply("354 go on")
			var msg strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(l)
			}
			f.mu.Lock()
			f.messages = append(f.messages, msg.String())
			f.mu.Unlock()
			if f.hangData {
				_, _ = drain(r)
				return
			}
			reply(f.dataReply)
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 unknown")
		}
	}
}

// drain reads until the client gives up and closes the connection.
func drain(r *bufio.Reader) (int64, error) {
	return r.WriteTo(writerFunc(func(p []byte) (int, error) { return len(p), nil }))
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func TestSMTPFakeServer(t *testing.T) {
	tests := []struct {
		name         string
		script       smtpScript
		creds        string
		wantErr      bool
		wantUnknown  bool
		wantSessions int32
	}{
		{"accepted, with AUTH PLAIN over loopback", smtpScript{dataReply: "250 queued"}, "user:p%40ss", false, false, 1},
		{"permanent rejection is not retried", smtpScript{dataReply: "554 5.7.1 rejected"}, "", true, false, 1},
		{"temporary rejection is retried once", smtpScript{dataReply: "451 4.3.0 try later"}, "", true, false, 2},
		{"no answer to the end of DATA is unknown", smtpScript{hangData: true}, "", true, true, 1},
		{"no answer before DATA is a failure", smtpScript{hangMail: true}, "", true, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newFakeSMTP(t, tt.script)
			u := "smtp://" + srv.addr
			if tt.creds != "" {
				u = "smtp://" + tt.creds + "@" + srv.addr
			}
			s, err := NewSMTP(newTemplates(t, ""), SMTPOptions{URL: u, From: "noreply@example.com", AttemptTimeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), emailMessage)
			if (err != nil) != tt.wantErr || errors.Is(err, verification.ErrOutcomeUnknown) != tt.wantUnknown {
				t.Errorf("got %v, want error %v with outcome unknown %v", err, tt.wantErr, tt.wantUnknown)
			}
			if got := srv.sessions.Load(); got != tt.wantSessions {
				t.Errorf("got %d SMTP sessions, want %d", got, tt.wantSessions)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if tt.creds != "" {
				want, _ := url.PathUnescape(tt.creds)
				if len(srv.logins) != 1 || srv.logins[0] != want {
					t.Errorf("logins: got %q, want [%s]", srv.logins, want)
				}
			}
			if !tt.script.hangMail && (len(srv.messages) == 0 || !strings.Contains(srv.messages[0], "multipart/alternative")) {
				t.Errorf("got messages %q, want a multipart/alternative message", srv.messages)
			}
		})
	}
}

func TestSMTPContextEndsAttempt(t *testing.T) {
	srv := newFakeSMTP(t, smtpScript{hangMail: true})
	s, err := NewSMTP(newTemplates(t, ""), SMTPOptions{URL: "smtp://" + srv.addr, From: "noreply@example.com", AttemptTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Send(ctx, emailMessage)
	if err == nil || errors.Is(err, verification.ErrOutcomeUnknown) {
		t.Errorf("got %v, want an ordinary error", err)
	}
	// Not a timing assertion on the happy path: without the context closing
	// the connection this would wait out the one-minute attempt timeout.
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Errorf("Send returned after %v, want it to stop when the context ends", elapsed)
	}
}

func TestSMTPConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s, err := NewSMTP(newTemplates(t, ""), SMTPOptions{URL: "smtp://" + addr, From: "noreply@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), emailMessage)
	if err == nil || errors.Is(err, verification.ErrOutcomeUnknown) {
		t.Errorf("got %v, want an ordinary error", err)
	}
	if err := s.Send(context.Background(), smsMessage); err == nil {
		t.Error("SMS through SMTP: got nil error, want refusal")
	}
}

// mailpitMessage is the part of Mailpit's GET /api/v1/message/{ID} checked here.
type mailpitMessage struct {
	ID   string
	From struct{ Name, Address string }
	To   []struct{ Name, Address string }
	Subject,
	Text,
	HTML string
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// findMailpit returns the one message Mailpit holds for to.
func findMailpit(t *testing.T, api, to string) mailpitMessage {
	t.Helper()
	var list struct{ Messages []mailpitMessage }
	// Mailpit stores a message right after its 250; allow it a moment.
	for range 50 {
		getJSON(t, api+"/api/v1/search?query="+url.QueryEscape("to:"+to), &list)
		if len(list.Messages) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(list.Messages) != 1 {
		t.Fatalf("Mailpit has %d messages to %s, want 1", len(list.Messages), to)
	}
	var m mailpitMessage
	getJSON(t, api+"/api/v1/message/"+list.Messages[0].ID, &m)
	return m
}

func TestSMTPEndToEnd(t *testing.T) {
	smtpAddr := testenv.Get(t, testenv.MailpitSMTP)
	api := testenv.Get(t, testenv.MailpitAPI)
	s, err := NewSMTP(newTemplates(t, ""), SMTPOptions{URL: "smtp://" + smtpAddr, From: "VerifyKit <noreply@verifykit.test>"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		locale, wantSubject, wantText string
	}{
		{"", "您的验证码", "5 分钟内有效"},
		{"en-GB", "Your verification code", "It is valid for 5 minutes"},
	}
	for _, tt := range tests {
		t.Run("locale "+tt.locale, func(t *testing.T) {
			m := emailMessage
			m.Locale = tt.locale
			m.To = fmt.Sprintf("smtp-%d@example.com", time.Now().UnixNano())
			if err := s.Send(context.Background(), m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := findMailpit(t, api, m.To)
			if got.From.Address != "noreply@verifykit.test" || got.From.Name != "VerifyKit" {
				t.Errorf("from: got %+v, want VerifyKit <noreply@verifykit.test>", got.From)
			}
			if len(got.To) != 1 || got.To[0].Address != m.To {
				t.Errorf("to: got %+v, want [%s]", got.To, m.To)
			}
			if got.Subject != tt.wantSubject {
				t.Errorf("subject: got %q, want %q", got.Subject, tt.wantSubject)
			}
			if !strings.Contains(got.Text, m.Code) || !strings.Contains(got.Text, tt.wantText) {
				t.Errorf("text: got %q, want the code %s and %q", got.Text, m.Code, tt.wantText)
			}
			if !strings.Contains(got.HTML, m.Code) || !strings.Contains(got.HTML, "<html") {
				t.Errorf("html: got %q, want an HTML document with the code %s", got.HTML, m.Code)
			}
		})
	}
}
