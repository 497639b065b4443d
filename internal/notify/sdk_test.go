package notify

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// unlimitedRetryer reports MaxAttempts 0, which the SDK reads as no limit.
type unlimitedRetryer struct{ aws.NopRetryer }

func (unlimitedRetryer) MaxAttempts() int { return 0 }

func TestRetryLimit(t *testing.T) {
	tests := []struct {
		name string
		in   aws.Retryer
		want int
	}{
		{"nil uses the standard retryer", nil, 2},
		{"standard 3 attempts is cut to 2", retry.NewStandard(), 2},
		{"10 attempts is cut to 2", retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 10 }), 2},
		{"no retry stays so", aws.NopRetryer{}, 1},
		{"unlimited is cut to 2", unlimitedRetryer{}, 2},
	}
	limit, _ := sdkCall(time.Second)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := limit(tt.in).MaxAttempts(); got != tt.want {
				t.Errorf("MaxAttempts: got %d, want %d", got, tt.want)
			}
		})
	}
}
