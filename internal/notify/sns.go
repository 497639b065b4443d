package notify

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/verifykit/verifykit/internal/verification"
)

// SNSPublisher is the part of *sns.Client the SMS sender uses.
type SNSPublisher interface {
	Publish(ctx context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error)
}

// SNSOptions configures an SNS sender. Every field is optional.
type SNSOptions struct {
	// SenderID is the alphanumeric sender ID shown where carriers support
	// it: 1–11 letters and digits, at least one letter.
	SenderID string
	// MaxPrice is the most, in US dollars ("0.05"), one SMS may cost; SNS
	// drops a message that would cost more (SMS_MAX_PRICE). Empty: no cap.
	MaxPrice string
	// AttemptTimeout bounds each of the (at most two) attempts;
	// DefaultAttemptTimeout if zero.
	AttemptTimeout time.Duration
}

// SNS sends SMS directly to phone numbers through Amazon SNS.
type SNS struct {
	client    SNSPublisher
	templates *Templates
	attrs     map[string]types.MessageAttributeValue
	retryer   func(aws.Retryer) aws.Retryer
	attempt   func(*middleware.Stack) error
}

// NewSNS returns an SMS sender publishing through client. It refuses a sender
// ID SNS would reject, so the mistake stops start-up instead of every send.
func NewSNS(client SNSPublisher, t *Templates, o SNSOptions) (*SNS, error) {
	// Transactional buys the delivery route meant for one-time codes, ahead
	// of the cheaper Promotional one.
	attrs := map[string]types.MessageAttributeValue{
		"AWS.SNS.SMS.SMSType": {DataType: aws.String("String"), StringValue: aws.String("Transactional")},
	}
	if o.SenderID != "" {
		if !validSenderID(o.SenderID) {
			return nil, fmt.Errorf("notify: SMS sender ID %q must be 1-11 letters and digits with at least one letter", o.SenderID)
		}
		attrs["AWS.SNS.SMS.SenderID"] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(o.SenderID)}
	}
	if o.MaxPrice != "" { // validated with the configuration (SMS_MAX_PRICE)
		attrs["AWS.SNS.SMS.MaxPrice"] = types.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(o.MaxPrice)}
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	s := &SNS{client: client, templates: t, attrs: attrs}
	s.retryer, s.attempt = sdkCall(o.AttemptTimeout)
	return s, nil
}

func validSenderID(s string) bool {
	letter := false
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			letter = true
		case r >= '0' && r <= '9':
		default:
			return false
		}
	}
	return letter && len(s) <= 11
}

// Send publishes m as an SMS to m.To (E.164). An error wrapping
// verification.ErrOutcomeUnknown means SNS may still deliver it.
func (s *SNS) Send(ctx context.Context, m verification.Message) error {
	if m.Channel != verification.SMS {
		return fmt.Errorf("notify: SNS sends SMS, not %s", m.Channel)
	}
	c, err := s.templates.Render(m)
	if err != nil {
		return err
	}
	_, err = s.client.Publish(ctx, &sns.PublishInput{
		PhoneNumber:       aws.String(m.To),
		Message:           aws.String(c.Text),
		MessageAttributes: s.attrs,
	}, func(o *sns.Options) {
		o.Retryer = s.retryer(o.Retryer)
		o.APIOptions = append(o.APIOptions, s.attempt)
	})
	if err != nil {
		return failed("sns publish", err)
	}
	return nil
}
