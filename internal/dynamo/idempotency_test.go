package dynamo_test

import (
	"testing"

	"github.com/verifykit/verifykit/internal/storetest"
	"github.com/verifykit/verifykit/internal/testenv"
	"github.com/verifykit/verifykit/internal/verification"
)

func TestIdempotencyContract(t *testing.T) {
	endpoint := testenv.Get(t, testenv.DynamoDB)
	storetest.RunIdempotency(t, func(t *testing.T) (verification.Store, verification.IdempotencyStore) {
		s, _, _ := newStore(t, endpoint, storetest.Limits(), nil)
		return s, s
	})
}
