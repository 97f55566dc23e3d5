package e2e

import (
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// go test does not fail a run when a sub-benchmark fails in any but the
// first of -test.count runs: it prints the failure, then PASS, and exits
// 0 (go 1.26; the parent benchmark runs once, its sub-benchmarks count
// times, and only the first run's failure reaches the parent). The e2e
// benchmarks are run with -test.count 3 for medians, so a failed job or a
// wrong answer in a later run would pass unseen. subBench is b.Run that
// records its failure, and TestMain makes the exit status say so.
var subFailed atomic.Bool

func subBench(b *testing.B, name string, f func(*testing.B)) bool {
	return b.Run(name, func(b *testing.B) {
		b.Cleanup(func() {
			if b.Failed() {
				subFailed.Store(true)
			}
		})
		f(b)
	})
}

// failEnv, set, makes BenchmarkFailsWhenRepeated's sub-benchmark fail from
// its second run on.
const failEnv = "SHOAL_E2E_FAIL_REPEATED"

var failRuns atomic.Int64

func BenchmarkFailsWhenRepeated(b *testing.B) {
	if os.Getenv(failEnv) == "" {
		b.Skip("run by TestRepeatedSubBenchmarkFailureFails")
	}
	subBench(b, "sub", func(b *testing.B) {
		if failRuns.Add(1) >= 2 {
			b.Fatal("the second run fails")
		}
	})
}

// TestRepeatedSubBenchmarkFailureFails runs this binary's
// BenchmarkFailsWhenRepeated with -test.count 2 and wants a failed run.
func TestRepeatedSubBenchmarkFailureFails(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run", "^$", "-test.bench", "^BenchmarkFailsWhenRepeated$", "-test.benchtime", "1x", "-test.count", "2")
	cmd.Env = append(cleanEnv(), binEnv+"="+shoalBin, failEnv+"=1")
	r := runCmd(t, cmd)
	if r.code == 0 {
		t.Fatalf("a sub-benchmark failed in the second run and the binary exited 0:\n%s%s", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout+r.stderr, "the second run fails") {
		t.Fatalf("exit %d without the failure:\n%s%s", r.code, r.stdout, r.stderr)
	}
}
