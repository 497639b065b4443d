package app

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

// TestStaticEndpoints: the endpoint resolved once is the one the SDK's rules
// give for the region and settings, including the China partition (the
// default phone region is CN) and a local endpoint override; without a
// region the client keeps the SDK's resolver.
func TestStaticEndpoints(t *testing.T) {
	tests := []struct {
		name, region, base string
		fips               bool
		dynamo, ses, sns   string
	}{
		{"us-east-1", "us-east-1", "", false,
			"https://dynamodb.us-east-1.amazonaws.com", "https://email.us-east-1.amazonaws.com", "https://sns.us-east-1.amazonaws.com"},
		{"China", "cn-north-1", "", false,
			"https://dynamodb.cn-north-1.amazonaws.com.cn", "https://email.cn-north-1.amazonaws.com.cn", "https://sns.cn-north-1.amazonaws.com.cn"},
		{"FIPS", "us-west-2", "", true,
			"https://dynamodb-fips.us-west-2.amazonaws.com", "https://email-fips.us-west-2.amazonaws.com", "https://sns-fips.us-west-2.amazonaws.com"},
		{"local override", "us-east-1", "http://127.0.0.1:8000", false,
			"http://127.0.0.1:8000", "http://127.0.0.1:8000", "http://127.0.0.1:8000"},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var base *string
			if tt.base != "" {
				base = aws.String(tt.base)
			}
			fips := aws.FIPSEndpointStateUnset
			if tt.fips {
				fips = aws.FIPSEndpointStateEnabled
			}
			d := dynamodb.Options{Region: tt.region, BaseEndpoint: base, EndpointOptions: dynamodb.EndpointResolverOptions{UseFIPSEndpoint: fips}}
			staticDynamoEndpoint(&d)
			if d.EndpointResolverV2 == nil {
				t.Fatal("DynamoDB: no static endpoint")
			}
			if e, _ := d.EndpointResolverV2.ResolveEndpoint(ctx, dynamodb.EndpointParameters{}); e.URI.String() != tt.dynamo {
				t.Errorf("DynamoDB: got %s, want %s", e.URI.String(), tt.dynamo)
			}
			s := sesv2.Options{Region: tt.region, BaseEndpoint: base, EndpointOptions: sesv2.EndpointResolverOptions{UseFIPSEndpoint: fips}}
			staticSESEndpoint(&s)
			if s.EndpointResolverV2 == nil {
				t.Fatal("SES: no static endpoint")
			}
			if e, _ := s.EndpointResolverV2.ResolveEndpoint(ctx, sesv2.EndpointParameters{}); e.URI.String() != tt.ses {
				t.Errorf("SES: got %s, want %s", e.URI.String(), tt.ses)
			}
			n := sns.Options{Region: tt.region, BaseEndpoint: base, EndpointOptions: sns.EndpointResolverOptions{UseFIPSEndpoint: fips}}
			staticSNSEndpoint(&n)
			if n.EndpointResolverV2 == nil {
				t.Fatal("SNS: no static endpoint")
			}
			if e, _ := n.EndpointResolverV2.ResolveEndpoint(ctx, sns.EndpointParameters{}); e.URI.String() != tt.sns {
				t.Errorf("SNS: got %s, want %s", e.URI.String(), tt.sns)
			}
		})
	}
	t.Run("no region", func(t *testing.T) {
		var d dynamodb.Options
		staticDynamoEndpoint(&d)
		if d.EndpointResolverV2 != nil {
			t.Errorf("got a static endpoint without a region; want the SDK's resolver kept")
		}
	})
}
