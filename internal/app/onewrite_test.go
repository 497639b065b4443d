package app_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/apptest"
)

// countingConn counts the writes made on a connection: each is a system
// call, and on AWS a TLS record.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestOneWritePerRequest: every call to DynamoDB, SES and SNS leaves in one
// write, headers and body together, the send's TransactWriteItems at the
// highest per-IP limit (a hundred slots, about 7 KB) included. net/http
// writes the headers apart from a body it does not know to be in memory, as
// the SDK's are, and splits what outgrows its 4 KB buffer.
func TestOneWritePerRequest(t *testing.T) {
	var writes atomic.Int64
	dialer := &net.Dialer{}
	cfg := apptest.StaticAWS()
	cfg.HTTPClient = awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{c, &writes}, nil
		}
	})
	endpoints, _ := instantAWS(t)
	s := apptest.NewWith(t, instantEnv(), app.Options{AWSConfig: cfg, Endpoints: endpoints})

	tests := []struct {
		name, body string
		calls      int64
	}{
		// TransactWriteItems, the user lookup (GetItem), SendEmail
		{"email send, ANY", `{"target":"ANY","email":"a@example.com"}`, 3},
		// TransactWriteItems, GetItem, Publish
		{"SMS send, ANY", `{"target":"ANY","phone_number":"+86 13800138000"}`, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := writes.Load()
			resp := benchServe(context.Background(), s.App, sendRoute, "10.9.0.1", tt.body)
			if resp.Status != 200 {
				t.Fatalf("send: %d %s\n%s", resp.Status, resp.Body, s.Stdout)
			}
			if got := writes.Load() - before; got != tt.calls {
				t.Errorf("%d writes for %d calls to AWS; want one write per call", got, tt.calls)
			}
		})
	}
	if strings.Contains(s.Stdout.String(), "aws-sdk") {
		t.Errorf("the SDK logged:\n%s", s.Stdout)
	}
}
