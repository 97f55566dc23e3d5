package clustertest

import (
	"errors"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	never := errors.New("never")
	if err := Wait(50*time.Millisecond, func() error { return never }); !errors.Is(err, never) {
		t.Fatalf("Wait = %v, want the condition's last error", err)
	}
	calls := 0
	if err := Wait(5*time.Second, func() error {
		calls++
		if calls < 3 {
			return never
		}
		return nil
	}); err != nil || calls != 3 {
		t.Fatalf("Wait = %v after %d calls", err, calls)
	}
}
