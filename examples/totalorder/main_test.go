package main

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/examples/internal/proctest"
)

// TestTotalOrderOnStockCluster runs totalorder, whose Prepare samples the
// input, on three stock shoal agents: the Prepare runs in a worker of the
// shipped program, sampling through the agent, and the output equals
// --local byte for byte, part by part; the parts are in order and each
// holds a share of the lines (the cut points took effect).
func TestTotalOrderOnStockCluster(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	prog := proctest.Build(t, ".", "totalorder")
	c := proctest.Start(t, 3)
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.Mkdir(in, 0o755)
	var locals, remotes []string
	lines := 0
	for _, name := range []string{"a", "b", "c"} {
		var b strings.Builder
		for i := 0; i < 4000; i++ {
			fmt.Fprintf(&b, "%c%06d %s\n", 'a'+rng.Intn(26), rng.Intn(5000), name) // duplicates on purpose
			lines++
		}
		p := filepath.Join(in, name+".txt")
		os.WriteFile(p, []byte(b.String()), 0o644)
		locals = append(locals, p)
		remotes = append(remotes, "/in/"+name+".txt")
	}
	c.MustRun("node1", c.Shoal, "fs", "put", in, "/in")
	local := filepath.Join(dir, "local")
	c.MustRun("node1", prog, "job", "run", "totalorder", "--local", "--param", "sample=500", "--input", strings.Join(locals, ","), "--output", local, "--reducers", "3")
	c.MustRun("node2", prog, "job", "run", "totalorder", "--param", "sample=500", "--input", strings.Join(remotes, ","), "--output", "/out/sorted", "--reducers", "3")
	got := filepath.Join(dir, "got")
	os.Mkdir(got, 0o755)
	var all []byte
	for p := 0; p < 3; p++ {
		name := fmt.Sprintf("part-r-%05d", p)
		c.MustRun("node3", c.Shoal, "fs", "get", "/out/sorted/"+name, filepath.Join(got, name))
		b, _ := os.ReadFile(filepath.Join(got, name))
		if n := bytes.Count(b, []byte("\n")); n < lines/10 {
			t.Errorf("%s holds %d of %d lines: the cut points did not split the input", name, n, lines)
		}
		all = append(all, b...)
	}
	proctest.SameFiles(t, got, local)
	sorted := strings.Split(strings.TrimSuffix(string(all), "\n"), "\n")
	if !slices.IsSorted(sorted) || len(sorted) != lines {
		t.Errorf("the parts in turn are not the %d lines sorted", lines)
	}
}
