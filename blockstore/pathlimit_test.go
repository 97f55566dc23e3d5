package blockstore

import (
	"errors"
	"strings"
	"testing"

	"shoal.dev/shoal/gossip"
)

// TestPathLimitFitsTheKey: every path CleanPath accepts makes a file key
// the metadata holds, and a longer one is refused at the door.
func TestPathLimitFitsTheKey(t *testing.T) {
	longest := ""
	for len(longest) < MaxPathLen {
		longest += "/" + strings.Repeat("a", min(200, MaxPathLen-len(longest)-1))
	}
	p, err := CleanPath(longest, false)
	if err != nil {
		t.Fatalf("a path of %d bytes: %v", len(longest), err)
	}
	if n := len(fileKey(p)); n > gossip.MaxKeyLen {
		t.Fatalf("a path CleanPath accepts makes a key of %d bytes, over the metadata's %d", n, gossip.MaxKeyLen)
	}
	for _, n := range []int{MaxPathLen + 1, 600, 1024} {
		long := "/" + strings.Repeat(strings.Repeat("c", 99)+"/", n/100) + strings.Repeat("d", n%100)
		long = long[:n]
		if _, err := CleanPath(strings.TrimSuffix(long, "/")+"x", false); !errors.Is(err, ErrBadPath) || !strings.Contains(err.Error(), "longer than 507 bytes") {
			t.Errorf("a path of about %d bytes: %v, want ErrBadPath saying the limit", n, err)
		}
	}
}
