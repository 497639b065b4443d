package verification

import (
	"strconv"
	"testing"
)

// TestBreakerWatchCap: past maxWatched tripped prefixes a new trip is still
// reported, every time since it is not remembered, and the memory does not
// grow; a remembered prefix still changes state.
func TestBreakerWatchCap(t *testing.T) {
	var w BreakerWatch
	for i := range maxWatched {
		if _, changed := w.refused(&PrefixRefusal{Prefix: "p" + strconv.Itoa(i), State: Suspect}); !changed {
			t.Fatalf("trip %d not reported", i)
		}
	}
	for i := range 2 {
		if tr, changed := w.refused(&PrefixRefusal{Prefix: "new", State: Blocked}); !changed || tr.From != Healthy || tr.To != Blocked {
			t.Errorf("refusal %d of a prefix past the cap: %+v %v, want reported from healthy", i, tr, changed)
		}
	}
	if len(w.tripped) != maxWatched {
		t.Errorf("%d prefixes remembered, want the cap, %d", len(w.tripped), maxWatched)
	}
	if tr, changed := w.refused(&PrefixRefusal{Prefix: "p0", State: Blocked}); !changed || tr.From != Suspect || w.tripped["p0"] != Blocked {
		t.Errorf("a remembered prefix at the cap: %+v %v, state %v; want suspect → blocked, remembered", tr, changed, w.tripped["p0"])
	}
}
