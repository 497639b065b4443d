package memstore_test

import (
	"testing"

	"github.com/verifykit/verifykit/internal/memstore"
	"github.com/verifykit/verifykit/internal/storetest"
	"github.com/verifykit/verifykit/internal/verification"
)

// TestContract runs the contract both stores pass.
func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, limits verification.Limits, users []string) storetest.Stores {
		s := memstore.New(limits, users)
		return storetest.Stores{Codes: s, Captcha: s, SetPumping: func(p verification.Pumping) error { s.SetPumping(p); return nil }}
	})
}
