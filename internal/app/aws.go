package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
	"github.com/aws/smithy-go/logging"
)

// sdkLogger sends the AWS SDK's own log lines through the service's slog
// logger, as JSON lines like every other, instead of the SDK's default plain
// text on stderr. The SDK logs rarely (a retry's clock skew, a body it could
// not close); its WARN is a warning here and anything else debug. Request
// and response logging (ClientLogMode) stays off: a body names a person.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	l.log.Log(context.Background(), sdkLevel(c), fmt.Sprintf(format, v...), "source", "aws-sdk")
}

func sdkLevel(c logging.Classification) slog.Level {
	if c == logging.Warn {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// fixedEndpoint answers every call with one endpoint resolved when the
// client is built. A function's region and endpoint never change while it
// runs, yet the SDK runs its endpoint rules (a decision tree over region,
// partition, FIPS, dual-stack and account settings) again on every call.
// It is used by pointer: the SDK compares resolvers, and an endpoint holds
// maps.
type fixedEndpoint[P any] struct{ e smithyendpoints.Endpoint }

func (f *fixedEndpoint[P]) ResolveEndpoint(context.Context, P) (smithyendpoints.Endpoint, error) {
	return f.e, nil
}

// fixEndpoint returns a resolver that answers every call with the endpoint
// a service's own rules (resolve) give for the client's settings p. Should
// the rules refuse the settings, it returns r, the client's resolver, which
// reports the error on each call, as before.
func fixEndpoint[P, R any](r R, resolve func(context.Context, P) (smithyendpoints.Endpoint, error), p P) R {
	e, err := resolve(context.Background(), p)
	if err != nil {
		return r
	}
	return any(&fixedEndpoint[P]{e}).(R)
}

// staticDynamoEndpoint fixes the DynamoDB client's endpoint. Account-based
// endpoints are turned off so the endpoint does not depend on the caller's
// credentials: the regional endpoint serves every account.
func staticDynamoEndpoint(o *dynamodb.Options) {
	o.AccountIDEndpointMode = aws.AccountIDEndpointModeDisabled
	dual, fips := endpointVariants(o.EndpointOptions.UseDualStackEndpoint, o.EndpointOptions.UseFIPSEndpoint)
	o.EndpointResolverV2 = fixEndpoint(o.EndpointResolverV2, dynamodb.NewDefaultEndpointResolverV2().ResolveEndpoint, dynamodb.EndpointParameters{
		Region: regionParam(o.Region), Endpoint: o.BaseEndpoint, UseDualStack: dual, UseFIPS: fips,
		AccountIdEndpointMode: aws.String(string(aws.AccountIDEndpointModeDisabled)),
	})
}

// staticSESEndpoint fixes the SES client's endpoint (SendEmail's only
// per-call parameter, a multi-region EndpointId, is not used).
func staticSESEndpoint(o *sesv2.Options) {
	dual, fips := endpointVariants(o.EndpointOptions.UseDualStackEndpoint, o.EndpointOptions.UseFIPSEndpoint)
	o.EndpointResolverV2 = fixEndpoint(o.EndpointResolverV2, sesv2.NewDefaultEndpointResolverV2().ResolveEndpoint,
		sesv2.EndpointParameters{Region: regionParam(o.Region), Endpoint: o.BaseEndpoint, UseDualStack: dual, UseFIPS: fips})
}

// staticSNSEndpoint fixes the SNS client's endpoint.
func staticSNSEndpoint(o *sns.Options) {
	dual, fips := endpointVariants(o.EndpointOptions.UseDualStackEndpoint, o.EndpointOptions.UseFIPSEndpoint)
	o.EndpointResolverV2 = fixEndpoint(o.EndpointResolverV2, sns.NewDefaultEndpointResolverV2().ResolveEndpoint,
		sns.EndpointParameters{Region: regionParam(o.Region), Endpoint: o.BaseEndpoint, UseDualStack: dual, UseFIPS: fips})
}

// endpointVariants are the dual-stack and FIPS settings as the endpoint
// rules take them.
func endpointVariants(dual aws.DualStackEndpointState, fips aws.FIPSEndpointState) (*bool, *bool) {
	return aws.Bool(dual == aws.DualStackEndpointStateEnabled), aws.Bool(fips == aws.FIPSEndpointStateEnabled)
}

// regionParam is the region as the SDK binds it per call: none when unset,
// which its rules refuse.
func regionParam(r string) *string {
	if r == "" {
		return nil
	}
	return &r
}

// idleConnsPerHost is how many kept-alive connections each AWS client keeps
// to its endpoint. The SDK keeps 10; a local server under load, or a send
// that runs its DynamoDB transaction beside a user lookup, needs one per
// request in flight, and a connection closed for want of an idle slot costs
// a new TCP (and in AWS a TLS) handshake on a later call.
const idleConnsPerHost = 64

// writeBufferSize holds a whole request: a send's TransactWriteItems is
// about 7 KB at the highest per-IP limit (a hundred slots to shift), and
// with net/http's 4 KB buffer it left in two writes.
const writeBufferSize = 16 << 10

// awsHTTPClient is the HTTP client of every AWS client: the configuration's
// own (which keeps a custom CA bundle) with idle connections sized to the
// concurrency, and, when timeout is set, a bound on each attempt.
func awsHTTPClient(c aws.HTTPClient, timeout time.Duration) aws.HTTPClient {
	b, ok := c.(*awshttp.BuildableClient)
	if !ok {
		if c != nil {
			return c // a caller's own client, kept as given
		}
		b = awshttp.NewBuildableClient()
	}
	b = b.WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConns = 4 * idleConnsPerHost
		t.MaxIdleConnsPerHost = idleConnsPerHost
		t.WriteBufferSize = writeBufferSize
	})
	if timeout > 0 {
		b = b.WithTimeout(timeout)
	}
	return b
}

// oneWrite hands each request's body to net/http as bytes in memory, so the
// headers and the body leave in one write: one system call per request
// instead of two, and one TLS record instead of two on AWS. The SDK wraps
// every body in a reader net/http does not know to be in memory, and for
// such a body net/http writes the headers first, on their own. A body is a
// few hundred bytes here, and the SDK builds a new request, from its own
// rewound copy, for every attempt.
type oneWrite struct{ c aws.HTTPClient }

func (w oneWrite) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.ContentLength > 0 {
		b := make([]byte, r.ContentLength)
		_, err := io.ReadFull(r.Body, b)
		_ = r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	return w.c.Do(r)
}
