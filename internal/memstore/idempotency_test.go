package memstore_test

import (
	"testing"

	"github.com/verifykit/verifykit/internal/memstore"
	"github.com/verifykit/verifykit/internal/storetest"
	"github.com/verifykit/verifykit/internal/verification"
)

func TestIdempotencyContract(t *testing.T) {
	storetest.RunIdempotency(t, func(t *testing.T) (verification.Store, verification.IdempotencyStore) {
		s := memstore.New(memstore.Options{Limits: storetest.Limits()})
		return s, s
	})
}
