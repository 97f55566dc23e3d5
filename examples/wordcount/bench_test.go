package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"shoal.dev/shoal/examples/internal/proctest"
)

// BenchmarkShipped runs, in one run on one cluster of three stock agents,
// the built-in wordcount and the same code as a shipped job on
// SHOAL_BENCH_BYTES (default 1 GiB) of generated text, alternately (the
// order swapped every iteration: run an even -benchtime), and
// reports each one's seconds per run, the CPU seconds the agents and
// their workers used, and the ratios. The outputs must be
// equal. The program is stored and fetched by every node before the timed
// runs (a first run of it on a small input), as it is for every run after
// a build's first.
func BenchmarkShipped(b *testing.B) {
	size := int64(1 << 30)
	if s := os.Getenv("SHOAL_BENCH_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatalf("SHOAL_BENCH_BYTES: %v", err)
		}
		size = n
	}
	prog := proctest.Build(b, ".", "wordcount")
	c := proctest.Start(b, 3)
	c.Timeout = time.Hour
	dir := b.TempDir()
	text := filepath.Join(dir, "text")
	c.MustRun("node1", c.Shoal, "gen", "text", "--bytes", strconv.FormatInt(size, 10), "--seed", "7", "--output", text)
	c.MustRun("node1", c.Shoal, "fs", "put", text, "/bench/text", "--replication", "1")
	os.Remove(text)
	// Warm up: every node fetches the program once, as after any first run.
	small := filepath.Join(dir, "small")
	c.MustRun("node1", c.Shoal, "gen", "text", "--bytes", "2MB", "--output", small)
	c.MustRun("node1", c.Shoal, "fs", "put", small, "/bench/small", "--block-size", "64K")
	c.MustRun("node1", prog, "job", "run", "shippedwordcount", "--input", "/bench/small", "--output", "/bench/warm", "--reducers", "6")
	for node := range c.Addrs {
		if cached, _ := filepath.Glob(filepath.Join(c.Dir, node, "bin", "*")); len(cached) == 0 {
			b.Fatalf("%s ran no task of the warm-up job", node)
		}
	}

	var builtin, shipped time.Duration
	var builtinCPU, shippedCPU float64
	run := func(bin, name, out string) time.Duration {
		start, cpu := time.Now(), c.CPUSeconds()
		c.MustRun("node1", bin, "job", "run", name, "--input", "/bench/text", "--output", out, "--reducers", "3", "--replication", "1")
		if bin == c.Shoal {
			builtinCPU += c.CPUSeconds() - cpu
		} else {
			shippedCPU += c.CPUSeconds() - cpu
		}
		return time.Since(start)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Alternate which runs first: the second finds the input in the
		// page cache.
		if i%2 == 0 {
			builtin += run(c.Shoal, "wordcount", fmt.Sprintf("/bench/builtin-%d", i))
			shipped += run(prog, "shippedwordcount", fmt.Sprintf("/bench/shipped-%d", i))
		} else {
			shipped += run(prog, "shippedwordcount", fmt.Sprintf("/bench/shipped-%d", i))
			builtin += run(c.Shoal, "wordcount", fmt.Sprintf("/bench/builtin-%d", i))
		}
		b.StopTimer()
		x, y := filepath.Join(dir, fmt.Sprint("b", i)), filepath.Join(dir, fmt.Sprint("s", i))
		os.Mkdir(x, 0o755)
		os.Mkdir(y, 0o755)
		for p := 0; p < 3; p++ {
			part := fmt.Sprintf("part-r-%05d", p)
			c.MustRun("node2", c.Shoal, "fs", "get", fmt.Sprintf("/bench/builtin-%d/%s", i, part), filepath.Join(x, part))
			c.MustRun("node2", c.Shoal, "fs", "get", fmt.Sprintf("/bench/shipped-%d/%s", i, part), filepath.Join(y, part))
		}
		proctest.SameFiles(b, x, y)
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(builtin.Seconds()/float64(b.N), "builtin-s/op")
	b.ReportMetric(shipped.Seconds()/float64(b.N), "shipped-s/op")
	b.ReportMetric(shipped.Seconds()/builtin.Seconds(), "shipped/builtin")
	// CPU time counts what the machine spent, whoever else shares it.
	b.ReportMetric(builtinCPU/float64(b.N), "builtin-cpu-s/op")
	b.ReportMetric(shippedCPU/float64(b.N), "shipped-cpu-s/op")
	b.ReportMetric(shippedCPU/builtinCPU, "shipped/builtin-cpu")
}
