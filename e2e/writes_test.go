package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"shoal.dev/shoal/client"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
)

// metric reads one counter from a node's /metrics; -1 when the node does
// not answer.
func (e *fsEnv) metric(url, name string) int64 {
	return metricOf(clientFor(e.t, e.lc, url), name)
}

func metricOf(cl *client.Client, name string) int64 {
	text, err := cl.Metrics(context.Background())
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// startCLI starts a shoal command against url without waiting for it.
func (e *fsEnv) startCLI(url string, stdin *os.File, args ...string) (*exec.Cmd, *bytes.Buffer) {
	e.t.Helper()
	cmd := exec.Command(shoalBin, append(append([]string{}, args...), "--addr", url)...)
	cmd.Env = append(cleanEnv(), "SHOAL_SECRET_FILE="+e.lc.secretFile())
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = stdin, &stderr
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, &stderr
}

func exitCode(cmd *exec.Cmd) int {
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// metricSum adds up a counter over every node of st that answers: a
// resumable put's blocks are written by their owners' agents, not only by
// the agent the client talks to.
func (e *fsEnv) metricSum(st map[string][2]string, name string) int64 {
	var sum int64
	for _, s := range st {
		if n := e.metric(s[1], name); n > 0 {
			sum += n
		}
	}
	return sum
}

// killAfterWrites kills -9 the victim once the nodes' pipelines have
// stored at least k blocks more than base (a metricSum).
func (e *fsEnv) killAfterWrites(st map[string][2]string, victim string, base, k int64) {
	e.t.Helper()
	clustertest.Eventually(e.t, 120*time.Second, func() error {
		if n := e.metricSum(st, "shoal_block_writes_total"); n < base+k {
			return fmt.Errorf("the agents wrote %d blocks, waiting for %d", n-base, k)
		}
		return nil
	})
	var pid int
	fmt.Sscan(st[victim][0], &pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		e.t.Fatalf("kill %s: %v", victim, err)
	}
}

// TestPutSurvivesNodeLoss puts 300 MB in 1 MB blocks at R=3 on 5 nodes and
// kills -9 one node at a random moment: a replica target (the put
// succeeds, reads back identical, every block is back at R within 60 s),
// the node the client talks to (the put of a local file goes on through
// another member), the node a get reads through (it goes on from the byte
// it reached), and the put's node again with the data on stdin (the put
// fails, says why, and leaves nothing).
func TestPutSurvivesNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("300 MB puts on 5 nodes")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 18))
	e, st := startFSEnv(t, 5)
	input := e.genText("in.txt", "300MB", int(seed%1000))
	want := fileSumTB(t, input)
	names := []string{"node1", "node2", "node3", "node4", "node5"}
	pick := func(not string) string {
		for {
			if n := names[rng.IntN(len(names))]; n != not {
				return n
			}
		}
	}
	readBack := func(via, p string) {
		t.Helper()
		out := filepath.Join(e.dir, "back")
		e.mustCLI(st[via][1], "fs", "get", p, out)
		if got := fileSumTB(t, out); got != want {
			t.Fatalf("%s read back through %s differs", p, via)
		}
		os.Remove(out)
	}
	restart := func() {
		t.Helper()
		if r := e.lc.script("start"); r.code != 0 {
			t.Fatalf("restart: %s%s", r.stdout, r.stderr)
		}
		st = e.lc.status()
	}

	t.Run("replica target dies", func(t *testing.T) {
		client := pick("")
		victim := pick(client)
		k := int64(10 + rng.IntN(150)) // of ~300 blocks
		t.Logf("put through %s, kill -9 %s after %d blocks", client, victim, k)
		base := e.metricSum(st, "shoal_block_writes_total")
		subs := e.metricSum(st, "shoal_block_writes_substituted_total")
		cmd, stderr := e.startCLI(st[client][1], nil, "fs", "put", input, "/a.txt", "--block-size", "1MB")
		e.killAfterWrites(st, victim, base, k)
		if code := exitCode(cmd); code != 0 {
			t.Fatalf("put exited %d: %s", code, stderr)
		}
		if n := e.metricSum(st, "shoal_block_writes_substituted_total") - subs; n < 1 {
			t.Fatalf("the agents count %d substituted writes: the kill hit no write", n)
		}
		readBack(pick(victim), "/a.txt")
		start := time.Now()
		clustertest.Eventually(t, 60*time.Second, func() error { return e.healthy(st[client][1], "/a.txt", 3) })
		t.Logf("every block at R = 3 on the survivors %s after the read back", time.Since(start).Round(time.Millisecond))
		restart()
	})

	t.Run("client's agent dies, local file", func(t *testing.T) {
		client := pick("")
		k := int64(10 + rng.IntN(150))
		t.Logf("put through %s, kill -9 it after %d blocks", client, k)
		base := e.metricSum(st, "shoal_block_writes_total")
		cmd, stderr := e.startCLI(st[client][1], nil, "fs", "put", input, "/b.txt", "--block-size", "1MB")
		e.killAfterWrites(st, client, base, k)
		if code := exitCode(cmd); code != 0 {
			t.Fatalf("put exited %d: %s", code, stderr)
		}
		if !strings.Contains(stderr.String(), client+" (") || !strings.Contains(stderr.String(), "stopped answering during the put of /b.txt; going on through") {
			t.Fatalf("the put did not say it went on through another member: %q", stderr)
		}
		t.Logf("put said: %s", strings.TrimSpace(stderr.String()))
		other := pick(client)
		readBack(other, "/b.txt")
		clustertest.Eventually(t, 60*time.Second, func() error { return e.healthy(st[other][1], "/b.txt", 3) })
		restart()
	})

	t.Run("client's agent dies during get", func(t *testing.T) {
		client := pick("")
		k := int64(20+rng.IntN(200)) << 20
		t.Logf("get /a.txt through %s, kill -9 it after %d MB", client, k>>20)
		out := filepath.Join(e.dir, "got.txt")
		cmd, stderr := e.startCLI(st[client][1], nil, "fs", "get", "/a.txt", out)
		// get writes a temp file beside out and renames it at the end.
		clustertest.Eventually(t, 120*time.Second, func() error {
			tmps, _ := filepath.Glob(filepath.Join(e.dir, ".got.txt.shoal-*"))
			for _, p := range tmps {
				if fi, err := os.Stat(p); err == nil && fi.Size() >= k {
					return nil
				}
			}
			return fmt.Errorf("fewer than %d bytes read", k)
		})
		var pid int
		fmt.Sscan(st[client][0], &pid)
		syscall.Kill(pid, syscall.SIGKILL)
		if code := exitCode(cmd); code != 0 {
			t.Fatalf("get exited %d: %s", code, stderr)
		}
		// A get reads each block straight from a holder's agent: if the
		// dead agent was serving the block being read, the get says it
		// went on through another; if another holder was, the death does
		// not touch it and nothing is said. Either way the bytes are whole.
		switch msg := strings.TrimSpace(stderr.String()); {
		case strings.Contains(msg, "stopped answering at byte"):
			t.Logf("get said: %s", msg)
		case msg == "" || !strings.Contains(msg, "rror"):
			t.Logf("the get was reading from other holders when %s died: %q", client, msg)
		default:
			t.Fatalf("the get said neither that it went on through another member nor nothing: %q", msg)
		}
		if got := fileSumTB(t, out); got != want {
			t.Fatal("/a.txt read on through another member differs")
		}
		os.Remove(out)
		restart()
	})

	t.Run("client's agent dies, stdin", func(t *testing.T) {
		client := pick("")
		k := int64(10 + rng.IntN(150))
		t.Logf("put from stdin through %s, kill -9 it after %d blocks", client, k)
		in, err := os.Open(input)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		base := e.metricSum(st, "shoal_block_writes_total")
		cmd, stderr := e.startCLI(st[client][1], in, "fs", "put", "-", "/c.txt", "--block-size", "1MB")
		e.killAfterWrites(st, client, base, k)
		if code := exitCode(cmd); code != 1 {
			t.Fatalf("put from stdin exited %d after its agent died: %s", code, stderr)
		}
		msg := strings.TrimSpace(stderr.String())
		t.Logf("put said: %s", msg)
		for _, w := range []string{"/c.txt", client, "stopped answering", "stdin cannot be read again", "nothing was stored", "local file"} {
			if !strings.Contains(msg, w) {
				t.Errorf("error %q does not say %q", msg, w)
			}
		}
		if strings.Count(msg, "\n") > 0 || strings.Contains(msg, "reset") || strings.Contains(msg, "EOF") {
			t.Errorf("error is not one line of Shoal's words: %q", msg)
		}
		other := pick(client)
		r := e.cli(st[other][1], "fs", "stat", "/c.txt")
		if r.code == 0 {
			t.Fatalf("a failed put from stdin left a file: %s", r.stdout)
		}
		if ls := e.mustCLI(st[other][1], "fs", "ls", "/"); strings.Contains(ls, "/c.txt") {
			t.Fatalf("a failed put from stdin is listed: %s", ls)
		}
		restart()
	})
}

// TestJobOutputSurvivesReplicaLoss kills -9 a node that runs no reducer
// while the reducers write their parts, so it dies as a replica target of
// the output blocks: the job succeeds with the sequential run's output,
// and no reducer had to start over (the pipeline handed the dead node's
// copies to the next members).
func TestJobOutputSurvivesReplicaLoss(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 19))
	e, st := startFSEnv(t, 5)
	names := []string{"node1", "node2", "node3", "node4", "node5"}
	input := e.genText("corpus.txt", "24MB", int(seed%1000))
	e.mustCLI(st["node1"][1], "fs", "put", input, "/in/corpus.txt", "--block-size", "128K")
	const reducers = 4
	localOut := filepath.Join(e.dir, "local")
	if r := shoal(t, nil, "job", "run", "distinct", "--local", "--input", input, "--output", localOut, "--reducers", fmt.Sprint(reducers)); r.code != 0 {
		t.Fatalf("local run: %s", r.stderr)
	}
	want := localParts(t, localOut)

	submitter := names[rng.IntN(len(names))]
	r := e.cli(st[submitter][1], "job", "run", "distinct", "--input", "/in/corpus.txt", "--output", "/out/d",
		"--reducers", fmt.Sprint(reducers), "--detach")
	if r.code != 0 {
		t.Fatalf("submit: %s", r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	// Reducer p runs on the ring owner of "<job>/p".
	cl := clientFor(t, e.lc, st[submitter][1])
	var reducerNodes []string
	for p := 0; p < reducers; p++ {
		o, err := cl.Owners(context.Background(), fmt.Sprintf("%s/%d", id, p), 1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(reducerNodes, o.Owners[0]) {
			reducerNodes = append(reducerNodes, o.Owners[0])
		}
	}
	var candidates []string
	for _, n := range names {
		if n != submitter && !slices.Contains(reducerNodes, n) {
			candidates = append(candidates, n)
		}
	}
	if len(candidates) == 0 {
		t.Skipf("seed %d: the %d reducers and the submitter cover every node", seed, reducers)
	}
	victim := candidates[rng.IntN(len(candidates))]
	base := map[string]int64{}
	for _, n := range reducerNodes {
		base[n] = e.metric(st[n][1], "shoal_block_writes_total")
	}
	k := int64(1 + rng.IntN(8))
	t.Logf("job %s submitted on %s, reducers on %v; kill -9 %s once the reducers stored %d output blocks", id, submitter, reducerNodes, victim, k)
	clustertest.Eventually(t, 180*time.Second, func() error {
		var written int64
		for _, n := range reducerNodes {
			written += e.metric(st[n][1], "shoal_block_writes_total") - base[n]
		}
		if written < k {
			return fmt.Errorf("%d output blocks stored", written)
		}
		return nil
	})
	var pid int
	fmt.Sscan(st[victim][0], &pid)
	syscall.Kill(pid, syscall.SIGKILL)

	scl := clientFor(t, e.lc, st[submitter][1])
	final := waitSucceeded(t, scl, id)
	if got := e.mustCLI(st[submitter][1], "fs", "cat", "/out/d/part-*"); got != want {
		t.Fatalf("cluster output (%d bytes) differs from the sequential run (%d bytes)", len(got), len(want))
	}
	// No reduce attempt failed: the dead node's copies went to others.
	// Launched: one per partition, plus any backups (speculation on a
	// loaded machine) and the attempts they killed.
	f, l := final.Counters.Get("NUM_FAILED_REDUCES"), final.Counters.Get("TOTAL_LAUNCHED_REDUCES")
	if extra := l - int64(reducers) - final.Counters.Get("NUM_KILLED_REDUCES"); f != 0 || extra < 0 || extra > final.Counters.Get("NUM_SPECULATIVE_REDUCES") {
		t.Errorf("%d reduce attempts failed, %d launched, want 0 and %d (%v)", f, l, reducers, final.Counters)
	}
	var substituted int64
	for _, n := range reducerNodes {
		substituted += e.metric(st[n][1], "shoal_block_writes_substituted_total")
		if log := e.lc.script("logs", n).stdout; strings.Contains(log, "task=r-") && strings.Contains(log, `msg="task attempt failed"`) {
			t.Errorf("a reducer on %s failed after %s died:\n%s", n, victim, grepLines(log, "task attempt failed"))
		}
	}
	if substituted == 0 {
		t.Fatalf("no output block needed a substitute: %s died after the reducers wrote", victim)
	}
	t.Logf("%d output block writes went to a substitute", substituted)
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
