package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// streamingCluster starts 3 nodes with a generated corpus stored in 256K
// blocks, and the built-in wordcount's output over it as the reference.
func streamingCluster(t *testing.T) (*fsEnv, string, string) {
	e, st := startFSEnv(t, 3)
	url := st["node1"][1]
	input := e.genText("corpus.txt", "1MB", 11)
	e.mustCLI(url, "fs", "put", input, "/in/corpus.txt", "--block-size", "256K")
	e.mustCLI(url, "job", "run", "wordcount", "--input", "/in/corpus.txt", "--output", "/ref", "--reducers", "2")
	return e, url, e.mustCLI(url, "fs", "cat", "/ref/part-*")
}

func script(name string) string { return filepath.Join(repoRoot, "e2e", "testdata", "streaming", name) }

func TestStreamingPythonWordCount(t *testing.T) {
	e, url, want := streamingCluster(t)
	e.mustCLI(url, "streaming", "-input", "/in/corpus.txt", "-output", "/py",
		"-mapper", "python3 mapper.py", "-reducer", "python3 reducer.py",
		"-file", script("mapper.py"), "-file", script("reducer.py"), "-numReduceTasks", "2")
	if got := e.mustCLI(url, "fs", "cat", "/py/part-*"); got != want {
		t.Fatalf("python word count (%d bytes) differs from the built-in (%d bytes)", len(got), len(want))
	}

	// A shell pipeline as a map-only job: first three letters of each
	// word, one per line, in input order.
	e.mustCLI(url, "streaming", "--input", "/in/corpus.txt", "--output", "/pipe",
		"--mapper", "tr -s ' ' '\\n' | cut -c1-3 | awk 'length($0) > 0 {print $0}'", "--reducer", "NONE")
	ls := e.mustCLI(url, "fs", "ls", "/pipe")
	if !strings.Contains(ls, "part-m-00000") || strings.Contains(ls, "part-r-") {
		t.Fatalf("map-only output:\n%s", ls)
	}
	got := e.mustCLI(url, "fs", "cat", "/pipe/part-m-*")
	local, _ := os.ReadFile(filepath.Join(e.dir, "corpus.txt"))
	var expect strings.Builder
	for _, w := range strings.Fields(string(local)) {
		if len(w) > 3 {
			w = w[:3]
		}
		expect.WriteString(w + "\n")
	}
	if got != expect.String() {
		t.Fatalf("pipeline output (%d bytes) differs from the expected %d bytes", len(got), expect.Len())
	}
}

// TestStreamingFlaky: a mapper and a reducer that on each attempt fail with
// probability 1/3 and sleep 0-10 s with probability 1/3 still give the
// right output.
func TestStreamingFlaky(t *testing.T) {
	e, url, want := streamingCluster(t)
	seed := fmt.Sprint(rand.Uint64())
	t.Logf("FLAKY_SEED=%s", seed)
	start := time.Now()
	e.mustCLI(url, "streaming", "-input", "/in/corpus.txt", "-output", "/flaky",
		"-mapper", "python3 flaky.py mapper.py", "-reducer", "python3 flaky.py reducer.py",
		"-file", script("flaky.py"), "-file", script("mapper.py"), "-file", script("reducer.py"),
		"-numReduceTasks", "2", "-cmdenv", "FLAKY_SEED="+seed, "-max-attempts", "12")
	if got := e.mustCLI(url, "fs", "cat", "/flaky/part-*"); got != want {
		t.Fatalf("flaky job output (%d bytes) differs from the built-in wordcount (%d bytes)", len(got), len(want))
	}
	t.Logf("flaky job took %s", time.Since(start).Round(time.Second))
}

// TestStreamingBadCommands: each gives a clear error and leaves the nodes
// healthy.
func TestStreamingBadCommands(t *testing.T) {
	e, url, want := streamingCluster(t)
	noexec := filepath.Join(e.dir, "noexec.sh")
	os.WriteFile(noexec, []byte("#!/bin/sh\ncat\n"), 0o644)
	cases := []struct {
		name   string
		mapper string
		want   string
	}{
		{"missing command", "no-such-command-xyz", "command not found"},
		{"not executable", noexec, "not executable"},
		{"binary blob", "head -c 100000000 /dev/zero", "longer than 64 MiB"},
	}
	for i, c := range cases {
		r := e.cli(url, "streaming", "-input", "/in/corpus.txt", "-output", fmt.Sprintf("/bad%d", i),
			"-mapper", c.mapper, "-reducer", "cat", "-max-attempts", "1")
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want %q", c.name, r.code, r.stderr, c.want)
		}
	}
	// Every node is still up and runs jobs.
	members := e.mustCLI(url, "members")
	if strings.Count(members, " alive ") != 3 {
		t.Fatalf("members after bad commands:\n%s", members)
	}
	e.mustCLI(url, "streaming", "-input", "/in/corpus.txt", "-output", "/good",
		"-mapper", "python3 mapper.py", "-reducer", "python3 reducer.py",
		"-file", script("mapper.py"), "-file", script("reducer.py"), "-numReduceTasks", "2")
	if got := e.mustCLI(url, "fs", "cat", "/good/part-*"); got != want {
		t.Fatal("a job after the bad ones gave wrong output")
	}
	if r := e.cli(url, "streaming", "-input", "/in/corpus.txt", "-output", "/x", "-reducer", "cat"); r.code != 2 {
		t.Fatalf("streaming without -mapper: exit %d", r.code)
	}
}
