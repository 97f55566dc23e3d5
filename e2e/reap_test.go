package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
)

// go test's -timeout ends the test binary with a panic that runs no
// cleanup, and the agents local-cluster.sh starts are daemons: they would
// outlive it, holding ports, disk and both cores for whatever runs next.
// So every cluster or agent a test starts is registered here until it is
// stopped, and reapBeforeTimeout stops what is still registered shortly
// before the timeout's panic.
var running struct {
	sync.Mutex
	next  int
	stops map[int]func()
}

// onTimeout registers stop, to be called if go test's timeout comes first;
// the returned func unregisters it.
func onTimeout(stop func()) (unregister func()) {
	running.Lock()
	defer running.Unlock()
	if running.stops == nil {
		running.stops = map[int]func(){}
	}
	id := running.next
	running.next++
	running.stops[id] = stop
	return func() {
		running.Lock()
		defer running.Unlock()
		delete(running.stops, id)
	}
}

// stopAll calls every registered stop, in parallel, saying why.
func stopAll(why string) {
	running.Lock()
	stops := running.stops
	running.stops = nil
	running.Unlock()
	if len(stops) == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "e2e: %s: stopping the %d clusters and agents still running\n", why, len(stops))
	var wg sync.WaitGroup
	for _, stop := range stops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stop()
		}()
	}
	wg.Wait()
}

// reapMargin is how long before go test's -timeout the clusters still
// running are stopped: a tenth of the timeout, at most 30 s.
func reapMargin(timeout time.Duration) time.Duration {
	return min(timeout/10, 30*time.Second)
}

// reapBeforeTimeout arms a timer that stops every registered cluster
// reapMargin before the -timeout flag's deadline, counted from now (just
// before m.Run starts go test's own clock). Call it after flag.Parse.
func reapBeforeTimeout() (disarm func()) {
	f := flag.Lookup("test.timeout")
	if f == nil {
		return func() {}
	}
	timeout, _ := f.Value.(flag.Getter).Get().(time.Duration)
	if timeout <= 0 {
		return func() {}
	}
	t := time.AfterFunc(timeout-reapMargin(timeout), func() {
		stopAll(fmt.Sprintf("go test's -timeout %v is %v away", timeout, reapMargin(timeout)))
	})
	return func() { t.Stop() }
}

// stopOnTimeout registers lc's cluster with the reaper, which runs
// local-cluster.sh stop on it and, having no test to report to, prints
// what goes wrong.
func (lc *localCluster) stopOnTimeout() (unregister func()) {
	return onTimeout(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := lc.scriptCmd(ctx, "stop").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: local-cluster.sh stop: %v\n%s", err, out)
		}
	})
}

// killOnTimeout registers the started cmd (an agent the test runs itself,
// not through local-cluster.sh) with the reaper for the rest of tb.
func killOnTimeout(tb testing.TB, cmd *exec.Cmd) {
	tb.Cleanup(onTimeout(func() { cmd.Process.Kill() }))
}

// hangEnv, set, makes TestHangPastTimeout start a cluster, write its
// agent's pid to the file hangEnv names, and wait past go test's timeout.
const hangEnv = "SHOAL_E2E_HANG_PID_FILE"

// TestTimeoutStopsClusters runs this test binary on TestHangPastTimeout
// with a 30 s -timeout and checks that the cluster it started is stopped
// although the binary dies of the timeout's panic, which runs no cleanup.
func TestTimeoutStopsClusters(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestHangPastTimeout$", "-test.timeout", "30s")
	cmd.Env = append(cleanEnv(), binEnv+"="+shoalBin, hangEnv+"="+pidFile)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "test timed out") {
		t.Fatalf("want the child to die of its timeout; err %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "stopping the 1 clusters and agents still running") {
		t.Errorf("the reaper did not say it stopped the cluster:\n%s", out)
	}
	pid, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the child wrote no pid: %v\n%s", err, out)
	}
	t.Cleanup(func() { // if the reaper failed, the agent is left to this test
		var p int
		fmt.Sscan(string(pid), &p)
		if p > 0 && processGone(string(pid)) != nil {
			syscall.Kill(p, syscall.SIGKILL)
		}
	})
	// local-cluster.sh stop may still be finishing, as a process of its
	// own, after the child's panic.
	clustertest.Eventually(t, time.Minute, func() error { return processGone(string(pid)) })
}

func TestHangPastTimeout(t *testing.T) {
	pidFile := os.Getenv(hangEnv)
	if pidFile == "" {
		t.Skip("run by TestTimeoutStopsClusters")
	}
	lc := newLocalCluster(t)
	if r := lc.script("start", "1"); r.code != 0 {
		t.Fatalf("start 1: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := os.WriteFile(pidFile, []byte(lc.status()["node1"][0]), 0o600); err != nil {
		t.Fatal(err)
	}
	<-t.Context().Done() // never: the timeout's panic ends the binary first
}
