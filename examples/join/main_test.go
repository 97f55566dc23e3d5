package main

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/examples/internal/proctest"
)

// writeInputs writes the two sides of the join: users (uid, name) and
// orders (uid, order), with uids on both sides, on one side only, and
// repeated.
func writeInputs(t *testing.T, dir string, seed int64) (users, orders string) {
	rng := rand.New(rand.NewSource(seed))
	var u, o strings.Builder
	for i := 0; i < 3000; i++ {
		fmt.Fprintf(&u, "u%05d\tname-%d\n", rng.Intn(4000), i)
	}
	for i := 0; i < 40000; i++ {
		fmt.Fprintf(&o, "u%05d\torder-%07d-%d\n", rng.Intn(5000), i, rng.Intn(1000))
	}
	users, orders = filepath.Join(dir, "users.tsv"), filepath.Join(dir, "orders.tsv")
	os.WriteFile(users, []byte(u.String()), 0o644)
	os.WriteFile(orders, []byte(o.String()), 0o644)
	return users, orders
}

// TestJoinOnStockCluster is the process-level test: the join
// program, built here outside Shoal's module, runs its job on three agents
// of the stock shoal binary, which lacks it. Its output equals --local byte
// for byte; a second run stores no program bytes; each node starts at most
// one worker per task slot, fewer than the tasks; and a run whose
// submitting node is killed with SIGKILL mid-job gives the same output,
// the killed node's workers gone with it.
func TestJoinOnStockCluster(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	prog := proctest.Build(t, ".", "join")
	c := proctest.Start(t, 3)
	dir := t.TempDir()
	users, orders := writeInputs(t, dir, seed)
	c.MustRun("node1", c.Shoal, "fs", "put", users, "/in/users.tsv", "--block-size", "64K")
	c.MustRun("node1", c.Shoal, "fs", "put", orders, "/in/orders.tsv", "--block-size", "64K")
	local := filepath.Join(dir, "local")
	c.MustRun("node1", prog, "job", "run", "join", "--local", "--param", "left="+users, "--input", users+","+orders, "--output", local, "--reducers", "4")

	args := []string{"job", "run", "join", "--param", "left=/in/users.tsv", "--input", "/in/users.tsv,/in/orders.tsv", "--reducers", "4"}
	r := c.MustRun("node1", prog, append(args, "--output", "/out/1")...)
	if !strings.Contains(r.Stderr, "shipped program join (") {
		t.Errorf("first run did not ship the program: %s", r.Stderr)
	}
	id := proctest.JobID(t, r)
	got := filepath.Join(dir, "got1")
	os.Mkdir(got, 0o755)
	for p := 0; p < 4; p++ {
		name := fmt.Sprintf("part-r-%05d", p)
		c.MustRun("node2", c.Shoal, "fs", "get", "/out/1/"+name, filepath.Join(got, name))
	}
	proctest.SameFiles(t, got, local)

	// Workers: at most one per slot per node, fewer than the tasks.
	started := c.WorkersStarted(id)
	total := 0
	for node, n := range started {
		if n > runtime.NumCPU() {
			t.Errorf("%s started %d workers for the job, more than its %d slots", node, n, runtime.NumCPU())
		}
		total += n
	}
	tasks := countTasks(t, r.Stdout)
	if total == 0 || total >= tasks {
		t.Errorf("%d workers started for %d tasks (by node: %v)", total, tasks, started)
	}
	t.Logf("%d tasks ran in %d workers (by node %v)", tasks, total, started)

	// A second run stores no program bytes: no block or file is put.
	puts := `shoal_http_requests_total{code="201",route="PUT /v1/fs/`
	before := c.Metric(puts)
	r = c.MustRun("node1", prog, append(args, "--output", "/out/2")...)
	if !strings.Contains(r.Stderr, "already stored") {
		t.Errorf("second run: %s", r.Stderr)
	}
	if after := c.Metric(puts); after != before {
		t.Errorf("second run: %v blocks or files put, want none", after-before)
	}

	// The submitter dies mid-job; the job goes on and its output is the same.
	r = c.MustRun("node1", prog, append(args, "--output", "/out/3", "--detach")...)
	id = strings.TrimSpace(r.Stdout)
	proctest.Eventually(t, 120*time.Second, func() error {
		if n := c.WorkersStarted(id)["node1"]; n == 0 {
			return fmt.Errorf("node1 started no worker for %s yet", id)
		}
		return nil
	})
	c.Kill("node1")
	c.MustRun("node2", c.Shoal, "job", "wait", id)
	got3 := filepath.Join(dir, "got3")
	os.Mkdir(got3, 0o755)
	for p := 0; p < 4; p++ {
		name := fmt.Sprintf("part-r-%05d", p)
		c.MustRun("node3", c.Shoal, "fs", "get", "/out/3/"+name, filepath.Join(got3, name))
	}
	proctest.SameFiles(t, got3, local)
	cached, _ := filepath.Glob(filepath.Join(c.Dir, "node1", "bin", "*"))
	for _, bin := range cached {
		proctest.Eventually(t, 30*time.Second, func() error {
			if pids := proctest.Processes(bin); len(pids) > 0 {
				return fmt.Errorf("workers %v of the killed node still run", pids)
			}
			return nil
		})
	}
}

// countTasks reads TOTAL_LAUNCHED_MAPS and _REDUCES from a job's counters.
func countTasks(t *testing.T, out string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && (f[0] == "TOTAL_LAUNCHED_MAPS" || f[0] == "TOTAL_LAUNCHED_REDUCES") {
			var k int
			fmt.Sscan(f[1], &k)
			n += k
		}
	}
	if n == 0 {
		t.Fatalf("no task counts in %q", out)
	}
	return n
}
