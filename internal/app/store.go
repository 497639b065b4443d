package app

import (
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/verifykit/verifykit/internal/captcha"
	"github.com/verifykit/verifykit/internal/config"
	"github.com/verifykit/verifykit/internal/dynamo"
	"github.com/verifykit/verifykit/internal/memstore"
	"github.com/verifykit/verifykit/internal/verification"
)

// store is every port a store serves: both stores serve them all.
type store interface {
	verification.Store
	verification.IdempotencyStore
	captcha.Store
}

// newStore builds the DynamoDB store when VERIFICATION_TABLE names a table,
// and the in-memory store (with DEV_USERS as its users) otherwise.
func newStore(cfg *config.Config, o Options, awsConfig func() (aws.Config, error), phones *verification.PhoneParser, limits verification.Limits, pumping verification.Pumping) (store, error) {
	if cfg.VerificationTable != "" {
		ac, err := awsConfig()
		if err != nil {
			return nil, err
		}
		db := dynamodb.NewFromConfig(ac, append([]func(*dynamodb.Options){func(d *dynamodb.Options) {
			d.BaseEndpoint = o.endpoint("dynamodb", d.BaseEndpoint)
			// Fail closed within the function's budget: three attempts with
			// short backoffs (the SDK's default cap is 20 s) and a bound on
			// each attempt, then service_unavailable.
			d.Retryer = retry.AddWithMaxBackoffDelay(retry.NewStandard(), dynamoMaxBackoff)
			d.HTTPClient = oneWrite{awsHTTPClient(ac.HTTPClient, dynamoAttemptTimeout)}
			// The CRC32 of an answer repeats what TLS already ensures on
			// the SDK's HTTPS endpoint, and the check wraps every body: a
			// hash per call and, on an error answer not read to its end (a
			// failed condition), a "failed to close HTTP response body"
			// warning on every refused send.
			d.DisableValidateResponseChecksum = true
		}}, append(slices.Clone(o.DynamoOptions), staticDynamoEndpoint)...)...)
		ds, err := dynamo.New(db, dynamo.Options{Table: cfg.VerificationTable, UsersTable: cfg.UsersTable, Limits: limits, Pumping: pumping})
		if err != nil {
			return nil, err
		}
		return ds, nil
	}
	users := make([]string, 0, len(cfg.DevUsers))
	for _, u := range cfg.DevUsers {
		addr, err := phones.Parse(u)
		if err != nil {
			if addr, err = verification.ParseEmail(u); err != nil {
				return nil, fmt.Errorf("configuration: DEV_USERS has an entry that is neither a valid phone number nor email: %q", u)
			}
		}
		users = append(users, addr.Identity)
	}
	return memstore.New(memstore.Options{Limits: limits, Pumping: pumping, Users: users}), nil
}

// DynamoDB calls take milliseconds; these bound a sick table's cost to about
// 3 × 2 s, inside the function's 10 s timeout.
const (
	dynamoMaxBackoff     = 200 * time.Millisecond
	dynamoAttemptTimeout = 2 * time.Second
)
