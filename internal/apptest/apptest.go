// Package apptest builds the whole service in local mode for tests of its
// adapters: in-memory store, outbox sender, a settable clock.
package apptest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/verifykit/verifykit/internal/app"
	"github.com/verifykit/verifykit/internal/dynamo/dynamotest"
	"github.com/verifykit/verifykit/internal/httpapi"
	"github.com/verifykit/verifykit/internal/openapitest"
	"github.com/verifykit/verifykit/internal/testenv"
)

// Clock is a settable clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Service is a built local service.
type Service struct {
	*app.App
	Clock  *Clock
	Stdout *SafeBuffer
}

// SafeBuffer is a bytes.Buffer safe for concurrent writes.
type SafeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SafeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SafeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// New builds the service with env on top of local-mode defaults (fixed keys,
// so tests are repeatable).
func New(t testing.TB, env map[string]string) *Service {
	t.Helper()
	return NewWith(t, env, app.Options{})
}

// NewWith is New with options for app.New (Stdout is set here, and Now
// unless given).
func NewWith(t testing.TB, env map[string]string, o app.Options) *Service {
	t.Helper()
	base := map[string]string{
		"HMAC_KEY": "dGVzdC1obWFjLWtleS10ZXN0LWhtYWMta2V5LXRlc3QtaG1hYw==",
	}
	for k, v := range env {
		base[k] = v
	}
	cfg, err := app.Load(func(k string) string { return base[k] })
	if err != nil {
		t.Fatal(err)
	}
	// Parse the contract Do checks against now, not inside a test's
	// concurrent requests.
	if _, err := openapitest.Load(); err != nil {
		t.Fatal(err)
	}
	// The clock starts at the real time: DynamoDB Local deletes items whose
	// TTL (derived from this clock) has passed, within seconds.
	s := &Service{Clock: &Clock{t: time.Now().UTC().Truncate(time.Second)}, Stdout: &SafeBuffer{}}
	o.Stdout = s.Stdout
	if o.Now == nil {
		o.Now = s.Clock.Now
	}
	a, err := app.New(context.Background(), cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	s.App = a
	return s
}

// StaticAWS is an AWS configuration for the local stand-ins: a region and
// the static credentials they accept.
func StaticAWS() *aws.Config {
	return &aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
	}
}

// NewDynamo builds the service on DynamoDB Local (TEST_DYNAMODB_ENDPOINT):
// fresh tables from template.yaml, the given users in the users table.
func NewDynamo(t testing.TB, env map[string]string, users []string, o app.Options) *Service {
	t.Helper()
	endpoint := testenv.Get(t, testenv.DynamoDB)
	client, tables := dynamotest.StartTables(t, endpoint)
	for _, u := range users {
		_, err := client.PutItem(context.Background(), &dynamodb.PutItemInput{
			TableName: aws.String(tables["UsersTable"]),
			Item:      map[string]types.AttributeValue{"identity": &types.AttributeValueMemberS{Value: u}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	e := map[string]string{"VERIFICATION_TABLE": tables["VerificationTable"], "USERS_TABLE": tables["UsersTable"]}
	for k, v := range env {
		e[k] = v
	}
	o.AWSConfig = StaticAWS()
	if o.Endpoints == nil {
		o.Endpoints = map[string]string{}
	}
	o.Endpoints["dynamodb"] = endpoint
	return NewWith(t, e, o)
}

// Do serves one request from ip and returns the status, headers and decoded
// JSON body. Every exchange is checked against api/openapi.yaml: an answer
// the contract does not document fails the test.
func (s *Service) Do(t testing.TB, method, path, ip string, body string, header map[string]string) (int, map[string]string, map[string]any) {
	t.Helper()
	h := map[string]string{}
	for k, v := range header {
		h[k] = v
	}
	resp := s.Handler.Serve(context.Background(), &httpapi.Request{Method: method, Path: path, Header: h, Body: []byte(body), SourceIP: ip, RequestID: "test"})
	openapitest.Require(t, openapitest.Exchange{
		Method: method, Target: path, RequestHeader: header, RequestBody: []byte(body),
		Status: resp.Status, ResponseHeader: resp.Header, ResponseBody: resp.Body,
	})
	var m map[string]any
	if len(resp.Body) > 0 && strings.HasPrefix(resp.Header["Content-Type"], "application/json") {
		if err := json.Unmarshal(resp.Body, &m); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, path, resp.Body, err)
		}
	}
	return resp.Status, resp.Header, m
}

// LastCode is the code of the latest message in the outbox.
func (s *Service) LastCode(t testing.TB) string {
	t.Helper()
	msgs := s.Outbox.Messages()
	if len(msgs) == 0 {
		t.Fatal("outbox is empty")
	}
	return msgs[len(msgs)-1].Code
}

// StatusOK is 200, named for readable tables.
const StatusOK = http.StatusOK

// SigningKeyPEM is a fresh EC P-256 private key in PEM, for SIGNING_KEY.
func SigningKeyPEM(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}
