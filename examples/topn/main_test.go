package main

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/examples/internal/proctest"
)

// TestTopNOnStockCluster runs topn, built here outside Shoal's module, on
// three stock shoal agents and compares its output with --local byte for
// byte; a bad line fails the job at once with the job's own message.
func TestTopNOnStockCluster(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	prog := proctest.Build(t, ".", "topn")
	c := proctest.Start(t, 3)
	dir := t.TempDir()
	var b strings.Builder
	for i := 0; i < 50000; i++ {
		fmt.Fprintf(&b, "k%03d\titem-%d\t%d\n", rng.Intn(300), i, rng.Intn(1000)) // ties on purpose
	}
	in := filepath.Join(dir, "scores.tsv")
	os.WriteFile(in, []byte(b.String()), 0o644)
	c.MustRun("node1", c.Shoal, "fs", "put", in, "/in/scores.tsv", "--block-size", "64K")
	local := filepath.Join(dir, "local")
	c.MustRun("node1", prog, "job", "run", "topn", "--local", "--param", "n=5", "--input", in, "--output", local, "--reducers", "3")
	r := c.MustRun("node2", prog, "job", "run", "topn", "--param", "n=5", "--input", "/in/scores.tsv", "--output", "/out/top", "--reducers", "3")
	if !strings.Contains(r.Stdout, "COMBINE_INPUT_RECORDS") {
		t.Errorf("no counters: %s", r.Stdout)
	}
	got := filepath.Join(dir, "got")
	os.Mkdir(got, 0o755)
	for p := 0; p < 3; p++ {
		name := fmt.Sprintf("part-r-%05d", p)
		c.MustRun("node3", c.Shoal, "fs", "get", "/out/top/"+name, filepath.Join(got, name))
	}
	proctest.SameFiles(t, got, local)

	// A malformed line is the job's permanent failure, in its words.
	bad := filepath.Join(dir, "bad.tsv")
	os.WriteFile(bad, []byte("k1\titem\tnot-a-number\n"), 0o644)
	c.MustRun("node1", c.Shoal, "fs", "put", bad, "/in/bad.tsv")
	r = c.Run("node1", prog, "job", "run", "topn", "--input", "/in/bad.tsv", "--output", "/out/bad")
	if r.Code != 1 || !strings.Contains(r.Stderr, `want KEY, ITEM and SCORE`) {
		t.Errorf("bad input: exit %d, %s", r.Code, r.Stderr)
	}
}
