package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// slowMapScript is a streaming wordcount mapper that first sleeps
// $SLOW_SECONDS (default 20) when it runs on node4, which it tells by its
// working directory (DATA_DIR/work/JOB/TASK, node4's data dir being
// CLUSTER/node4): node4 is a slow node; the others are not.
const slowMapScript = `#!/bin/sh
case "$PWD" in
*/node4/work/*) sleep "${SLOW_SECONDS:-20}" ;;
esac
exec awk '{ for (i = 1; i <= NF; i++) print $i "\t1" }'
`

// sumReduceScript sums the counts of each key of sorted key\tcount lines.
const sumReduceScript = `#!/bin/sh
exec awk -F '\t' '$1 != k { if (NR > 1) print k "\t" n; k = $1; n = 0 } { n += $2 } END { if (NR > 0) print k "\t" n }'
`

// BenchmarkSpeculation runs one streaming wordcount three times on 4
// nodes, in the same run: with no slow node (SLOW_SECONDS=0), with every
// map task on node4 made 20 s slower and speculation on (the default), and
// the same with speculation off (-D mapreduce.{map,reduce}.speculative=false).
// It reports the three wall times and their ratios to the healthy run, and
// checks that every run's output equals the same pipeline run sequentially
// (awk | sort | awk). SHOAL_SPEC_BENCH_BYTES sets the input (default 8 MiB,
// in 512 KiB blocks).
func BenchmarkSpeculation(b *testing.B) {
	n := int64(8 << 20)
	if s := os.Getenv("SHOAL_SPEC_BENCH_BYTES"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 {
			b.Fatalf("SHOAL_SPEC_BENCH_BYTES=%q: want a positive byte count", s)
		}
		n = v
	}
	dir := b.TempDir()
	input := filepath.Join(dir, "corpus.txt")
	if out, err := exec.Command(shoalBin, "gen", "text", "--bytes", strconv.FormatInt(n, 10), "--seed", "7", "--output", input).CombinedOutput(); err != nil {
		b.Fatalf("gen: %v %s", err, out)
	}
	mapper, reducer := filepath.Join(dir, "slowmap.sh"), filepath.Join(dir, "sum.sh")
	for p, s := range map[string]string{mapper: slowMapScript, reducer: sumReduceScript} {
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	want := sequentialPipeline(b, input, reducer)
	c := startBenchCluster(b, 4)
	c.timedCLI(b, "fs", "put", input, "/spec/corpus.txt", "--block-size", "512KB")

	run := func(name string, extra ...string) time.Duration {
		out := "/spec/" + name
		args := append([]string{"streaming", "-input", "/spec/corpus.txt", "-output", out,
			"-mapper", "sh slowmap.sh", "-reducer", "sh sum.sh", "-file", mapper, "-file", reducer, "-numReduceTasks", "4",
			"--addr", c.url}, extra...)
		cmd := exec.Command(shoalBin, args...)
		cmd.Env = append(cleanEnv(), c.env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s: %v: %s", name, err, stderr.String())
		}
		d := time.Since(start)
		var counters []string
		for _, l := range strings.Split(stdout.String(), "\n") {
			if f := strings.Fields(l); len(f) == 2 && (strings.Contains(f[0], "LAUNCHED") || strings.Contains(f[0], "SPECULATIVE") || strings.Contains(f[0], "KILLED")) {
				counters = append(counters, f[0]+"="+f[1])
			}
		}
		b.Logf("%s: %s; %s", name, d.Round(10*time.Millisecond), strings.Join(counters, " "))
		r := exec.Command(shoalBin, "fs", "cat", out+"/part-*", "--addr", c.url)
		r.Env = append(cleanEnv(), c.env...)
		got, err := r.Output()
		if err != nil {
			b.Fatalf("%s: cat output: %v", name, err)
		}
		if sorted := sortLines(string(got)); sorted != want {
			b.Fatalf("%s: output (%d bytes) differs from the sequential pipeline's (%d bytes)", name, len(sorted), len(want))
		}
		return d
	}
	for i := 0; i < b.N; i++ {
		healthy := run(fmt.Sprintf("healthy-%d", i), "-cmdenv", "SLOW_SECONDS=0")
		spec := run(fmt.Sprintf("slow-speculation-%d", i))
		nospec := run(fmt.Sprintf("slow-no-speculation-%d", i), "-D", "mapreduce.map.speculative=false", "-D", "mapreduce.reduce.speculative=false")
		b.ReportMetric(healthy.Seconds(), "healthy-s")
		b.ReportMetric(spec.Seconds(), "speculation-s")
		b.ReportMetric(nospec.Seconds(), "no-speculation-s")
		b.ReportMetric(spec.Seconds()/healthy.Seconds(), "speculation-x-healthy")
		b.ReportMetric(nospec.Seconds()/healthy.Seconds(), "no-speculation-x-healthy")
	}
}

// sequentialPipeline runs the mapper (on no slow node) and the reducer
// over input in one process chain: awk | sort | awk, and returns its
// output's lines sorted.
func sequentialPipeline(b *testing.B, input, reducer string) string {
	sh := fmt.Sprintf(`awk '{ for (i = 1; i <= NF; i++) print $i "\t1" }' < %q | LC_ALL=C sort | sh %q`, input, reducer)
	out, err := exec.Command("sh", "-c", sh).Output()
	if err != nil {
		b.Fatalf("sequential pipeline: %v", err)
	}
	return sortLines(string(out))
}

func sortLines(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}
