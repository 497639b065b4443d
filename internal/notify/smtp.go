package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wneessen/go-mail"

	"github.com/verifykit/verifykit/internal/verification"
)

// SMTPSecurity is how the connection to an SMTP server is protected.
type SMTPSecurity int

// The three ways ParseSMTPURL can choose.
const (
	// SMTPStartTLS: smtp:// to any host but loopback. STARTTLS is required;
	// a server that does not offer it fails the send rather than receiving
	// credentials and codes in plain text.
	SMTPStartTLS SMTPSecurity = iota
	// SMTPImplicitTLS: smtps://, TLS from the first byte.
	SMTPImplicitTLS
	// SMTPPlain: smtp:// to localhost, 127.0.0.1 or ::1 only, where nothing
	// leaves the machine (a local relay, Mailpit in tests).
	SMTPPlain
)

// SMTPServer is a parsed SMTP URL.
type SMTPServer struct {
	Host     string // lower case; an IPv6 address without brackets
	Port     int
	Security SMTPSecurity
	Username string // "" for no authentication
	Password string
}

// String is the URL with the password hidden, for logs and error messages.
func (s SMTPServer) String() string {
	u := url.URL{Scheme: "smtp", Host: net.JoinHostPort(s.Host, strconv.Itoa(s.Port))}
	if s.Security == SMTPImplicitTLS {
		u.Scheme = "smtps"
	}
	if s.Username != "" {
		u.User = url.UserPassword(s.Username, "xxxxx")
	}
	return u.String()
}

// ParseSMTPURL parses smtp://[user:pass@]host[:port] (port 587 by default,
// STARTTLS required unless host is loopback) or smtps://... (port 465,
// implicit TLS). Its errors never contain the password.
//
// Credentials therefore only ever travel over TLS, or to loopback: there is
// no setting that sends them in plain text across a network.
func ParseSMTPURL(raw string) (SMTPServer, error) {
	fail := func(format string, args ...any) (SMTPServer, error) {
		return SMTPServer{}, fmt.Errorf("notify: SMTP URL: "+format, args...)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole input, password included.
		return fail("not a valid URL (want smtp://user:pass@host:587 or smtps://user:pass@host:465)")
	}
	var s SMTPServer
	switch u.Scheme {
	case "smtp":
		s.Port = 587
	case "smtps":
		s.Port, s.Security = 465, SMTPImplicitTLS
	default:
		return fail("scheme %q, want smtp or smtps", u.Scheme)
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fail("want only scheme, credentials, host and port (no path, query or fragment)")
	}
	if s.Host = strings.ToLower(u.Hostname()); s.Host == "" {
		return fail("no host")
	}
	if p := u.Port(); p != "" {
		if s.Port, err = strconv.Atoi(p); err != nil || s.Port < 1 || s.Port > 65535 {
			return fail("port %q out of range", p)
		}
	}
	if u.User != nil {
		s.Username = u.User.Username()
		pass, ok := u.User.Password()
		if s.Username == "" || !ok || pass == "" {
			return fail("credentials need both a user and a password (percent-encode reserved characters)")
		}
		s.Password = pass
	}
	if s.Security == SMTPStartTLS && isLoopback(s.Host) {
		s.Security = SMTPPlain
	}
	return s, nil
}

// isLoopback is the set go-mail's PLAIN and LOGIN mechanisms also accept
// without TLS; any other name, even 127.0.0.2, must use TLS.
func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// SMTPOptions configures an SMTP sender.
type SMTPOptions struct {
	// URL is the server, as ParseSMTPURL reads it. Required.
	URL string
	// From is the sender address, bare or "Name <address>". Required.
	From string
	// AttemptTimeout bounds each of the (at most two) attempts, dial to
	// QUIT; DefaultAttemptTimeout if zero.
	AttemptTimeout time.Duration
	// TLSConfig overrides the TLS settings (for a private CA); nil uses the
	// system roots. ServerName defaults to the URL's host.
	TLSConfig *tls.Config
}

// SMTP sends email through an SMTP server as multipart text and HTML.
type SMTP struct {
	templates *Templates
	server    SMTPServer
	from      string
	timeout   time.Duration
	tls       *tls.Config
}

// retryDelay is the pause before the one retry of a connection failure or a
// temporary (4xx) answer.
const retryDelay = 200 * time.Millisecond

// NewSMTP returns an email sender for the server o.URL names.
func NewSMTP(t *Templates, o SMTPOptions) (*SMTP, error) {
	server, err := ParseSMTPURL(o.URL)
	if err != nil {
		return nil, err
	}
	if _, err := netmail.ParseAddress(o.From); err != nil {
		return nil, fmt.Errorf("notify: email from address %q: %w", o.From, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = server.Host
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	return &SMTP{templates: t, server: server, from: o.From, timeout: o.AttemptTimeout, tls: cfg}, nil
}

// Send emails m to m.To. A failure before the server had the whole message
// is retried once when it may pass (a connection error or a 4xx answer); an
// error wrapping verification.ErrOutcomeUnknown means the message was sent
// in full but the server's answer did not come back.
func (s *SMTP) Send(ctx context.Context, m verification.Message) error {
	if m.Channel != verification.Email {
		return fmt.Errorf("notify: SMTP sends email, not %s", m.Channel)
	}
	c, err := s.templates.Render(m)
	if err != nil {
		return err
	}
	err = s.attempt(ctx, m.To, c)
	if err != nil && retryable(err) {
		select {
		case <-ctx.Done():
		case <-time.After(retryDelay):
			err = s.attempt(ctx, m.To, c)
		}
	}
	if err != nil {
		return failed("smtp send via "+s.server.String(), err)
	}
	return nil
}

func (s *SMTP) attempt(ctx context.Context, to string, c Content) error {
	msg := mail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return err
	}
	if err := msg.To(to); err != nil {
		return err
	}
	msg.Subject(c.Subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(mail.TypeTextPlain, c.Text)
	msg.AddAlternativeString(mail.TypeTextHTML, c.HTML)

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	client, err := mail.NewClient(s.server.Host, s.clientOptions(ctx)...)
	if err != nil {
		return err
	}
	err = client.DialAndSendWithContext(ctx, msg)
	switch {
	case msg.IsDelivered():
		return nil // only RSET or QUIT failed: the server has taken the message
	case err == nil:
		return nil
	}
	// After the final "." of DATA the server owns the message; with no reply
	// code to that, it may deliver it or not.
	var se *mail.SendError
	if errors.As(err, &se) && se.Reason == mail.ErrSMTPDataClose && se.ErrorCode() == 0 {
		return &outcomeUnknownError{err: err}
	}
	return err
}

func (s *SMTP) clientOptions(ctx context.Context) []mail.Option {
	addr := net.JoinHostPort(s.server.Host, strconv.Itoa(s.server.Port))
	// go-mail refreshes its connection deadline at every step, so its own
	// timeout does not bound an attempt; closing the connection when ctx
	// ends does. (Its address also lacks brackets for IPv6, hence our own.)
	dial := func(dctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		var conn net.Conn
		var err error
		if s.server.Security == SMTPImplicitTLS {
			conn, err = (&tls.Dialer{NetDialer: &d, Config: s.tls}).DialContext(dctx, network, addr)
		} else {
			conn, err = d.DialContext(dctx, network, addr)
		}
		if err == nil {
			context.AfterFunc(ctx, func() { _ = conn.Close() })
		}
		return conn, err
	}
	opts := []mail.Option{
		mail.WithPort(s.server.Port),
		mail.WithTimeout(s.timeout),
		mail.WithDialContextFunc(dial),
		mail.WithTLSConfig(s.tls),
	}
	switch s.server.Security {
	case SMTPImplicitTLS:
		opts = append(opts, mail.WithSSL())
	case SMTPStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case SMTPPlain:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if s.server.Username != "" {
		// Listed mechanisms, not auto-discovery: go-mail cannot tell that our
		// own TLS dial is encrypted and would then never offer PLAIN/LOGIN.
		// PLAIN and LOGIN themselves still refuse a non-TLS, non-loopback
		// connection.
		opts = append(opts,
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthSCRAMSHA256, mail.SMTPAuthSCRAMSHA1, mail.SMTPAuthPlain, mail.SMTPAuthLogin, mail.SMTPAuthCramMD5),
			mail.WithUsername(s.server.Username), mail.WithPassword(s.server.Password))
	}
	return opts
}

// retryable reports a definite failure that a second attempt may not meet: a
// network error while connecting, or a temporary (4xx) answer. Permanent
// answers, TLS and authentication failures would only fail again.
func retryable(err error) bool {
	if errors.Is(err, verification.ErrOutcomeUnknown) {
		return false
	}
	var se *mail.SendError
	if errors.As(err, &se) {
		return se.IsTemp()
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return !dns.IsNotFound
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
