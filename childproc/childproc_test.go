package childproc

import (
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// TestStart: children start and are waited for as with cmd.Start, from
// many goroutines at once, and a start that fails says why.
func TestStart(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			cmd := exec.Command("sh", "-c", "exit 0")
			if err := Start(cmd); err != nil {
				t.Errorf("start %d: %v", i, err)
				return
			}
			if err := cmd.Wait(); err != nil {
				t.Errorf("wait %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	err := Start(exec.Command("/nonexistent/shoal-child"))
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/shoal-child") {
		t.Fatalf("start of a missing program: %v", err)
	}
}
