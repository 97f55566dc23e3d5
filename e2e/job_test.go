package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"shoal.dev/shoal/client"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/scheduler"
)

// localWordcount generates a text corpus of size (gen text's --bytes)
// with seed in dir and runs wordcount over it with --local and reducers
// reducers: it returns the corpus's path and the output's parts in order.
func localWordcount(t *testing.T, dir, size string, seed, reducers int) (input, want string) {
	t.Helper()
	input = filepath.Join(dir, "corpus.txt")
	if r := shoal(t, nil, "gen", "text", "--bytes", size, "--seed", fmt.Sprint(seed), "--output", input); r.code != 0 {
		t.Fatal(r.stderr)
	}
	localOut := filepath.Join(dir, "local")
	if r := shoal(t, nil, "job", "run", "wordcount", "--local", "--input", input, "--output", localOut, "--reducers", fmt.Sprint(reducers)); r.code != 0 {
		t.Fatalf("local run: %s", r.stderr)
	}
	return input, localParts(t, localOut)
}

// localParts concatenates the part files of a local output dir in order.
func localParts(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "part-") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		data, _ := os.ReadFile(filepath.Join(dir, n))
		b.Write(data)
	}
	return b.String()
}

// TestJobSurvivesNodeLoss kills -9 one of five nodes at a random moment of
// a running wordcount — in some runs the node that took the job — and
// checks the job completes with the sequential run's output, reported by
// the survivors.
func TestJobSurvivesNodeLoss(t *testing.T) {
	e, st := startFSEnv(t, 5)
	lc := e.lc
	input := e.genText("corpus.txt", "24MB", 7)
	e.mustCLI(st["node1"][1], "fs", "put", input, "/in/corpus.txt", "--block-size", "256K")

	localOut := filepath.Join(e.dir, "local")
	if r := shoal(t, nil, "job", "run", "wordcount", "--local", "--input", input, "--output", localOut, "--reducers", "4"); r.code != 0 {
		t.Fatalf("local run: %s", r.stderr)
	}
	want := localParts(t, localOut)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	names := []string{"node1", "node2", "node3", "node4", "node5"}
	submitter := names[rng.IntN(5)]
	victim := submitter
	if rng.IntN(2) == 0 {
		victim = names[rng.IntN(5)]
	}
	r := e.cli(st[submitter][1], "job", "run", "wordcount", "--input", "/in/corpus.txt", "--output", "/out/wc", "--reducers", "4", "--detach")
	if r.code != 0 {
		t.Fatalf("submit: %s", r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	cl := clientFor(t, lc, st[submitter][1])
	// Kill once a random share of the maps is done.
	threshold := rng.Float64() * 0.9
	clustertest.Eventually(t, 120*time.Second, func() error {
		s, err := cl.Job(context.Background(), id)
		if err != nil {
			return err
		}
		if s.State != scheduler.StateRunning || s.MapProgress() >= threshold {
			return nil
		}
		return fmt.Errorf("map progress %.2f < %.2f", s.MapProgress(), threshold)
	})
	var pid int
	fmt.Sscan(st[victim][0], &pid)
	syscall.Kill(pid, syscall.SIGKILL)
	t.Logf("submitted on %s, killed %s at map progress >= %.2f", submitter, victim, threshold)

	var survivor string
	for _, n := range names {
		if n != victim {
			survivor = n
			break
		}
	}
	scl := clientFor(t, lc, st[survivor][1])
	waitSucceeded(t, scl, id)
	got := e.mustCLI(st[survivor][1], "fs", "cat", "/out/wc/part-*")
	if got != want {
		t.Fatalf("cluster output (%d bytes) differs from the sequential run (%d bytes)", len(got), len(want))
	}
	// Any survivor reports the same.
	for _, n := range names {
		if n == victim {
			continue
		}
		s, err := clientFor(t, lc, st[n][1]).Job(context.Background(), id)
		if err != nil || s.State != scheduler.StateSucceeded {
			t.Fatalf("%s reports %v %v", n, s.State, err)
		}
	}
}

// TestJobCLI runs the CLI's job commands and their errors.
func TestJobCLI(t *testing.T) {
	e, st := startFSEnv(t, 3)
	url := st["node2"][1]
	local := filepath.Join(e.dir, "in.txt")
	os.WriteFile(local, []byte("b a\nc b a\n"), 0o600)
	e.mustCLI(url, "fs", "put", local, "/in.txt")
	out := e.mustCLI(url, "job", "run", "wordcount", "--input", "/in.txt", "--output", "/wc", "--reducers", "2")
	for _, want := range []string{"succeeded", "MAP_INPUT_RECORDS", "REDUCE_OUTPUT_RECORDS", "/wc"} {
		if !strings.Contains(out, want) {
			t.Fatalf("job run output lacks %q:\n%s", want, out)
		}
	}
	if got := e.mustCLI(url, "fs", "cat", "/wc/part-*"); got != "a\t2\nb\t2\nc\t1\n" && !sameLines(got, "a\t2\nb\t2\nc\t1\n") {
		t.Fatalf("wordcount output %q", got)
	}
	list := e.mustCLI(url, "job", "list")
	if !strings.Contains(list, "wordcount") || !strings.Contains(list, "succeeded") {
		t.Fatalf("job list:\n%s", list)
	}
	bad := []struct {
		args []string
		want string
	}{
		{[]string{"job", "run", "nosuch", "--input", "/in.txt", "--output", "/x"}, "nosuch"},
		{[]string{"job", "run", "wordcount", "--input", "/missing", "--output", "/x"}, "no such file"},
		{[]string{"job", "run", "wordcount", "--input", "/in.txt", "--output", "/wc"}, "already exists"},
		{[]string{"job", "run", "grep", "--input", "/in.txt", "--output", "/x", "--param", "pattern=("}, "pattern"},
		{[]string{"job", "run", "wordcount", "--input", "/in.txt", "--output", "/x", "--reducers", "0"}, "at least 1"},
		{[]string{"job", "run", "wordcount", "--input", "/in.txt", "--output", "/x", "--reducers", "-2"}, "at least 1"},
		{[]string{"job", "status", "job-nosuch"}, "no such job"},
	}
	for _, b := range bad {
		r := e.cli(url, b.args...)
		if r.code == 0 || !strings.Contains(r.stderr, b.want) {
			t.Errorf("shoal %v: exit %d, stderr %q, want %q", b.args, r.code, r.stderr, b.want)
		}
	}
	if ls := e.mustCLI(url, "fs", "ls", "/"); strings.Contains(ls, "/x") {
		t.Fatalf("a bad job wrote output:\n%s", ls)
	}
}

func sameLines(a, b string) bool {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	sort.Strings(la)
	sort.Strings(lb)
	return strings.Join(la, "\n") == strings.Join(lb, "\n")
}

// waitSucceeded waits up to 3 minutes for job id to end and fails the test
// unless it succeeded.
func waitSucceeded(t *testing.T, scl *client.Client, id string) client.JobStatus {
	t.Helper()
	var final client.JobStatus
	clustertest.Eventually(t, 180*time.Second, func() error {
		s, err := scl.Job(context.Background(), id)
		if err != nil {
			return err
		}
		final = s
		if s.State == scheduler.StateRunning {
			return fmt.Errorf("map %d/%d reduce %d/%d", s.MapsDone, s.Maps, s.ReducesDone, s.Reducers)
		}
		return nil
	})
	if final.State != scheduler.StateSucceeded {
		t.Fatalf("job %s: %s", final.State, final.Error)
	}
	return final
}
