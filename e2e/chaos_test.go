package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/nettest/netns"
)

// chaosHosts is the chaos test's cluster size.
const chaosHosts = 5

// TestChaos runs 5 agents in network namespaces while a seeded random
// schedule of faults — kill -9 of an agent and its restart, a 2|3
// partition and its healing, a slow link — plays out, and puts and
// wordcount jobs keep coming on random hosts. Afterwards, with every agent
// up and the network whole: every acknowledged put reads back identical on
// every node, every job that succeeded gives the sequential run's output,
// and every block of every file (the input, the puts, the jobs' outputs)
// is back at R.
//
// SHOAL_CHAOS_SEED repeats a schedule (the seed is printed);
// SHOAL_CHAOS_DURATION sets how long faults go on (default 60s). It needs
// root and ip, and skips otherwise.
func TestChaos(t *testing.T) {
	if err := netns.Available(); err != nil {
		t.Skipf("skipping the chaos test: %v", err)
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("SHOAL_CHAOS_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("SHOAL_CHAOS_SEED=%q: want an integer", s)
		}
		seed = v
	}
	duration := 60 * time.Second
	if s := os.Getenv("SHOAL_CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("SHOAL_CHAOS_DURATION=%q: want a positive duration such as 10m", s)
		}
		duration = d
	}
	t.Logf("chaos seed %d, duration %v (SHOAL_CHAOS_SEED=%d SHOAL_CHAOS_DURATION=%v repeats this schedule)", seed, duration, seed, duration)
	slow := netns.TCAvailable() == nil
	if !slow {
		t.Logf("no slow links in this run: %v", netns.TCAvailable())
	}

	c := startNSCluster(t, chaosHosts, "--reconnect-interval", reconnectInterval.String())
	scratch := t.TempDir()
	input, want := localWordcount(t, scratch, "3MB", 23, 3)
	c.mustCLI(0, "fs", "put", input, "/in/corpus.txt", "--block-size", "256K")

	var (
		mu    sync.Mutex
		down  = map[int]bool{} // hosts whose agent is killed
		acked []ackedPut
		jobs  []string // job IDs whose submission was acknowledged
		wg    sync.WaitGroup
	)
	stop := make(chan struct{})
	upHost := func(r *rand.Rand) int {
		mu.Lock()
		defer mu.Unlock()
		for {
			if i := r.IntN(chaosHosts); !down[i] {
				return i
			}
		}
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	// Puts of small files, one after another, on random hosts.
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(uint64(seed), 1))
		for k := 0; !stopped(); k++ {
			host := upHost(r)
			name := fmt.Sprintf("p%d", k)
			local := filepath.Join(scratch, name)
			if err := os.WriteFile(local, genText(uint64(seed)+uint64(k), 50_000+r.IntN(250_000)), 0o600); err != nil {
				t.Error(err)
				return
			}
			res := c.cli(host, "fs", "put", local, "/chaos/"+name, "--block-size", "64K")
			if res.code != 0 {
				t.Logf("put /chaos/%s on %s not acknowledged: %s", name, c.lab.Host(host).Name(), strings.TrimSpace(res.stderr))
				continue
			}
			mu.Lock()
			acked = append(acked, ackedPut{path: "/chaos/" + name, local: local})
			mu.Unlock()
		}
	}()
	// Wordcount jobs, one after another: each submitted on a random host
	// and followed until it ends or the faults stop.
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(uint64(seed), 2))
		for k := 0; !stopped(); k++ {
			host := upHost(r)
			res := c.cli(host, "job", "run", "wordcount", "--input", "/in/corpus.txt", "--output", fmt.Sprintf("/out/j%d", k), "--reducers", "3", "--detach")
			if res.code != 0 {
				t.Logf("job %d on %s not submitted: %s", k, c.lab.Host(host).Name(), strings.TrimSpace(res.stderr))
				continue
			}
			id := strings.TrimSpace(res.stdout)
			mu.Lock()
			jobs = append(jobs, id)
			mu.Unlock()
			clustertest.Wait(2*time.Minute, func() error {
				if stopped() {
					return nil
				}
				out := c.cli(upHost(r), "job", "status", id)
				if out.code != 0 || strings.Contains(out.stdout, "state:     running") {
					return fmt.Errorf("running")
				}
				return nil
			})
		}
	}()

	// The fault schedule. Each fault holds for its scheduled time (the
	// schedule's own clock, not a wait for an event), then is undone.
	r := rand.New(rand.NewPCG(uint64(seed), 0))
	hold := func(d time.Duration) { <-time.After(d) }
	start := time.Now()
	for n := 1; time.Since(start) < duration; n++ {
		d := time.Duration(5+r.IntN(11)) * time.Second
		switch kind := r.IntN(3); {
		case kind == 0:
			i := r.IntN(chaosHosts)
			t.Logf("fault %d at %v: kill -9 %s for %v", n, time.Since(start).Round(time.Second), c.lab.Host(i).Name(), d)
			mu.Lock()
			down[i] = true
			mu.Unlock()
			c.kill(i, syscall.SIGKILL)
			hold(d)
			var join []string
			for j := range chaosHosts {
				if j != i {
					join = append(join, c.gossipAddr(j))
				}
			}
			c.start(i, join...)
			mu.Lock()
			down[i] = false
			mu.Unlock()
		case kind == 1:
			p := r.Perm(chaosHosts)
			a, b := p[:2], p[2:]
			t.Logf("fault %d at %v: partition %v|%v for %v", n, time.Since(start).Round(time.Second), names(c, a), names(c, b), d)
			c.lab.Partition(a, b)
			hold(d)
			c.lab.Heal()
		case slow:
			i := r.IntN(chaosHosts)
			delay := time.Duration(100+r.IntN(400)) * time.Millisecond
			t.Logf("fault %d at %v: slow link on %s (%v) for %v", n, time.Since(start).Round(time.Second), c.lab.Host(i).Name(), delay, d)
			if err := c.lab.Host(i).SlowLink(delay); err != nil {
				t.Fatal(err)
			}
			hold(d)
			if err := c.lab.Host(i).FastLink(); err != nil {
				t.Fatal(err)
			}
		default:
			t.Logf("fault %d at %v: none (no tc) for %v", n, time.Since(start).Round(time.Second), d)
			hold(d)
		}
		hold(time.Duration(1+r.IntN(4)) * time.Second)
	}
	close(stop)
	wg.Wait()
	t.Logf("faults over after %v: %d puts acknowledged, %d jobs submitted", time.Since(start).Round(time.Second), len(acked), len(jobs))

	// Every agent up, one cluster again.
	c.waitAlive(chaosHosts, healBound)

	// Every acknowledged put reads back identical on every node.
	for k, p := range acked {
		wantB, _ := os.ReadFile(p.local)
		for i := range chaosHosts {
			if k%3 != 0 && i != k%chaosHosts {
				continue // every put on one node, every third on all
			}
			clustertest.Eventually(t, 2*time.Minute, func() error {
				res := c.cli(i, "fs", "cat", p.path)
				if res.code != 0 {
					return fmt.Errorf("%s: cat %s: %s", c.lab.Host(i).Name(), p.path, res.stderr)
				}
				if res.stdout != string(wantB) {
					return fmt.Errorf("%s: %s reads back %d bytes, want %d identical", c.lab.Host(i).Name(), p.path, len(res.stdout), len(wantB))
				}
				return nil
			})
		}
	}

	// Every job ends; every one that succeeded has the sequential output.
	files := []string{"/in/corpus.txt"}
	for _, p := range acked {
		files = append(files, p.path)
	}
	succeeded := 0
	for k, id := range jobs {
		var out string
		clustertest.Eventually(t, 3*time.Minute, func() error {
			out = c.mustCLI(k%chaosHosts, "job", "status", id)
			if strings.Contains(out, "state:     running") {
				return fmt.Errorf("job %s still running:\n%s", id, out)
			}
			return nil
		})
		if !strings.Contains(out, "state:     succeeded") {
			t.Logf("job %s did not succeed:\n%s", id, out)
			continue
		}
		succeeded++
		dir := outputOf(out)
		if got := c.mustCLI((k+1)%chaosHosts, "fs", "cat", dir+"/part-*"); got != want {
			t.Errorf("job %s: output (%d bytes) differs from the sequential run (%d bytes)", id, len(got), len(want))
		}
		for p := range 3 {
			files = append(files, fmt.Sprintf("%s/part-r-%05d", dir, p))
		}
	}
	t.Logf("%d of %d jobs succeeded", succeeded, len(jobs))
	if succeeded == 0 {
		t.Error("no job succeeded under the faults, so no output was checked")
	}

	// Every block of every file is back at R.
	clustertest.Eventually(t, 3*time.Minute, func() error {
		for _, f := range files {
			out := c.mustCLI(chaosHosts-1, "fs", "stat", f)
			if !strings.Contains(out, "Status: HEALTHY") || strings.Contains(out, "MOVING") {
				return fmt.Errorf("%s:\n%s", f, out)
			}
		}
		return nil
	})
}

func names(c *nsCluster, hosts []int) []string {
	var out []string
	for _, i := range hosts {
		out = append(out, c.lab.Host(i).Name())
	}
	return out
}

// outputOf reads the output directory from `shoal job status` text.
func outputOf(status string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "output:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
