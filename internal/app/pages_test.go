package app

import (
	"strings"
	"testing"
	"time"

	"github.com/verifykit/verifykit/internal/config"
)

// TestDemoPageCountsDownTheCooldown: the demo page's countdown starts from
// the configured resend cooldown, not from the 60 s the file carries.
func TestDemoPageCountsDownTheCooldown(t *testing.T) {
	pages, err := demoPages(&config.Config{ResendCooldown: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	index := string(pages["/"].Body)
	if !strings.Contains(index, `data-cooldown="45"`) || strings.Contains(index, `data-cooldown="60"`) {
		t.Errorf("the page does not carry the 45 s cooldown:\n%.600s", index)
	}
}
