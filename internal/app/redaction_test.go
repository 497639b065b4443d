package app_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/testenv"
)

// The targets of the failure paths, in every form a provider or store might
// quote them.
const (
	victimPhone = "+86 13800138000"
	victimEmail = "Victim.Person@Example.com"
)

var victimForms = []string{
	victimPhone, "+8613800138000", "8613800138000", "13800138000",
	victimEmail, strings.ToLower(victimEmail), "Victim.Person", "victim.person",
}

// TestNoLogLineNamesAPerson drives every failure path of a send (SNS
// refusal, SES refusal, SMTP recipient rejection, a provider timeout,
// DynamoDB down) against providers that quote the recipient in their error
// texts, as the real ones do, and scans the whole log output for the raw
// targets.
func TestNoLogLineNamesAPerson(t *testing.T) {
	tests := []struct {
		name      string
		env       func(t *testing.T) (map[string]string, app.Options)
		body      string
		timeout   time.Duration // the request's own deadline (Lambda's)
		wantState int
		wantError string
	}{
		{
			name: "SNS refusal",
			env: func(t *testing.T) (map[string]string, app.Options) {
				srv := answering(t, 400, "text/xml", nil, `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>InvalidParameter</Code><Message>Invalid parameter: PhoneNumber Reason: +8613800138000 is not valid to publish to</Message></Error><RequestId>5e9a0b7c-0000-4000-8000-000000000001</RequestId></ErrorResponse>`)
				return map[string]string{"CHANNELS": "sms", "SMS_SENDER": "sns"}, app.Options{AWSConfig: apptest.StaticAWS(), Endpoints: map[string]string{"sns": srv}}
			},
			body: `{"target":"ANY","phone_number":"` + victimPhone + `"}`, wantState: 502, wantError: "send_failed",
		},
		{
			name: "SES refusal",
			env: func(t *testing.T) (map[string]string, app.Options) {
				srv := answering(t, 400, "application/json", map[string]string{"x-amzn-ErrorType": "MessageRejected"},
					`{"message":"Email address is not verified. The following identities failed the check in region US-EAST-1: `+victimEmail+`"}`)
				return map[string]string{"CHANNELS": "email", "EMAIL_SENDER": "ses", "EMAIL_FROM": "no-reply@example.com"}, app.Options{AWSConfig: apptest.StaticAWS(), Endpoints: map[string]string{"sesv2": srv}}
			},
			body: `{"target":"ANY","email":"` + victimEmail + `"}`, wantState: 502, wantError: "send_failed",
		},
		{
			name: "SMTP recipient rejected",
			env: func(t *testing.T) (map[string]string, app.Options) {
				return map[string]string{"CHANNELS": "email", "EMAIL_SENDER": "smtp", "EMAIL_FROM": "no-reply@example.com", "SMTP_URL": "smtp://" + rejectingSMTP(t)}, app.Options{}
			},
			body: `{"target":"ANY","email":"` + victimEmail + `"}`, wantState: 502, wantError: "send_failed",
		},
		{
			name: "SNS timeout",
			env: func(t *testing.T) (map[string]string, app.Options) {
				return map[string]string{"CHANNELS": "sms", "SMS_SENDER": "sns"}, app.Options{AWSConfig: apptest.StaticAWS(), Endpoints: map[string]string{"sns": hanging(t)}}
			},
			body: `{"target":"ANY","phone_number":"` + victimPhone + `"}`, timeout: 1500 * time.Millisecond, wantState: 200, // 1 s for SNS after the release reserve
		},
		{
			name: "DynamoDB down",
			env: func(t *testing.T) (map[string]string, app.Options) {
				env := map[string]string{"VERIFICATION_TABLE": "verifications", "USERS_TABLE": "users", "SMS_SENDER": "sns", "EMAIL_SENDER": "ses", "EMAIL_FROM": "no-reply@example.com"}
				// Nothing listens on a FreeAddr: DynamoDB refuses connections.
				return env, app.Options{AWSConfig: apptest.StaticAWS(), Endpoints: map[string]string{"dynamodb": "http://" + testenv.FreeAddr(t)}}
			},
			body: `{"target":"USER","phone_number":"` + victimPhone + `"}`, wantState: 503, wantError: "service_unavailable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, o := tt.env(t)
			s := apptest.NewWith(t, env, o)
			ctx := context.Background()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			resp := s.Handler.Serve(ctx, &httpapi.Request{Method: "POST", Path: "/auth/v1/verification", Header: map[string]string{}, Body: []byte(tt.body), SourceIP: "203.0.113.9", RequestID: "r"})
			if resp.Status != tt.wantState || !strings.Contains(string(resp.Body), tt.wantError) {
				t.Fatalf("answer %d %s, want %d %s", resp.Status, resp.Body, tt.wantState, tt.wantError)
			}
			logs := s.Stdout.String()
			switch {
			case tt.wantError != "" && !strings.Contains(logs, `"cause":`):
				t.Fatalf("no cause logged, so the test proves nothing: %s", logs)
			case tt.wantError == "" && !strings.Contains(logs, `"delivery_outcome_unknown":true`):
				t.Fatalf("outcome not logged as unknown: %s", logs)
			}
			for _, form := range victimForms {
				if strings.Contains(logs, form) {
					t.Errorf("the logs name the target (%q):\n%s", form, logs)
				}
			}
			t.Logf("%s", logs)
		})
	}
}

// answering is an HTTP endpoint that answers every request the same way.
func answering(t *testing.T, status int, contentType string, header map[string]string, body string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// hanging is an HTTP endpoint that reads each request and never answers.
func hanging(t *testing.T) string {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv.URL
}

// rejectingSMTP is an SMTP server that refuses every recipient the way
// Postfix does, quoting the address.
func rejectingSMTP(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(conn)
				fmt.Fprint(conn, "220 fake ESMTP\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					cmd := strings.ToUpper(strings.TrimSpace(line))
					switch {
					case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
						fmt.Fprint(conn, "250-fake\r\n250 8BITMIME\r\n")
					case strings.HasPrefix(cmd, "RCPT TO:"):
						addr := strings.TrimSpace(line[len("RCPT TO:"):])
						fmt.Fprintf(conn, "550 5.1.1 %s: Recipient address rejected: User unknown in local recipient table\r\n", addr)
					case strings.HasPrefix(cmd, "QUIT"):
						fmt.Fprint(conn, "221 2.0.0 Bye\r\n")
						return
					default:
						fmt.Fprint(conn, "250 2.0.0 Ok\r\n")
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}
