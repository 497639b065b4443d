package memstore_test

import (
	"testing"

	"github.com/verifykit/verifykit/internal/memstore"
	"github.com/verifykit/verifykit/internal/storetest"
	"github.com/verifykit/verifykit/internal/verification"
)

// TestContract runs the contract both stores pass.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, limits verification.Limits, p verification.Pumping, users []string) storetest.Stores {
		s := memstore.New(memstore.Options{Limits: limits, Pumping: p, Users: users})
		return storetest.Stores{Codes: s, Captcha: s}
	})
}
