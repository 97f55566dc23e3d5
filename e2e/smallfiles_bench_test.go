package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkSmallFiles is the many-small-files case end to end on a 3-node
// cluster of processes: SHOAL_BENCH_FILES local files of about 1 KB
// (default 10,000) in 10 directories go in with one `shoal fs put DIR`, a
// wordcount runs over the directory, and its output must equal `job run
// --local` over the local directory. It reports the put's time, the time
// from the job's start to its submission (planning and packing), the
// job's time and its map tasks, which must be at most a few dozen.
func BenchmarkSmallFiles(b *testing.B) {
	n := 10000
	if s := os.Getenv("SHOAL_BENCH_FILES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("SHOAL_BENCH_FILES=%q: want a positive number", s)
		}
		n = v
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "small")
	var total int64
	for i := 0; i < n; i++ {
		p := filepath.Join(src, fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%06d.txt", i))
		if i < 10 {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		data := bytes.Repeat(fmt.Appendf(nil, "w%d common\nw%d x%d\n", i%97, i%13, i%7), 50) // about 1 KB
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(len(data))
	}
	local := filepath.Join(dir, "local")
	if out, err := exec.Command(shoalBin, "job", "run", "wordcount", "--local", "--input", src, "--output", local, "--reducers", "3").CombinedOutput(); err != nil {
		b.Fatalf("--local: %v: %s", err, out)
	}
	var want []byte
	for r := 0; r < 3; r++ {
		p, err := os.ReadFile(filepath.Join(local, fmt.Sprintf("part-r-%05d", r)))
		if err != nil {
			b.Fatal(err)
		}
		want = append(want, p...)
	}
	c := startBenchCluster(b, 3)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst := fmt.Sprintf("/small-%d", i)
		put, _ := c.timedCLI(b, "fs", "put", src, dst)
		start := time.Now()
		submitted, maps, stderr := c.jobRun(b, "job", "run", "wordcount", "--input", dst, "--output", dst+"-out", "--reducers", "3")
		took := time.Since(start)
		b.StopTimer()
		if maps == 0 || maps > 36 {
			b.Fatalf("%d files made %d map tasks, want 1 to 36:\n%s", n, maps, stderr)
		}
		got := filepath.Join(dir, fmt.Sprintf("got-%d", i))
		c.timedCLI(b, "fs", "get", dst+"-out", got)
		var have []byte
		for r := 0; r < 3; r++ {
			p, err := os.ReadFile(filepath.Join(got, fmt.Sprintf("part-r-%05d", r)))
			if err != nil {
				b.Fatal(err)
			}
			have = append(have, p...)
		}
		if !bytes.Equal(have, want) {
			b.Fatalf("output (%d bytes) differs from --local (%d bytes)", len(have), len(want))
		}
		b.Logf("%d files (%d bytes): put %v (%.1f files/s); job submitted after %v with %d map tasks; job ran %v in all",
			n, total, put.Round(time.Millisecond), float64(n)/put.Seconds(), submitted.Round(time.Millisecond), maps, took.Round(time.Millisecond))
		b.ReportMetric(put.Seconds(), "put-s")
		b.ReportMetric(submitted.Seconds(), "submit-s")
		b.ReportMetric(took.Seconds(), "job-s")
		b.ReportMetric(float64(maps), "maps")
		b.StartTimer()
	}
}

var submittedRE = regexp.MustCompile(`^submitted \S+: (\d+) maps`)

// jobRun runs a `job run` through the CLI to its end and returns when it
// printed its submission (after planning) and with how many map tasks.
func (c *benchCluster) jobRun(b *testing.B, args ...string) (time.Duration, int, string) {
	cmd := exec.Command(shoalBin, append(args, "--addr", c.url)...)
	cmd.Env = append(cleanEnv(), c.env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var (
		submitted time.Duration
		maps      int
		all       strings.Builder
	)
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		line := sc.Text()
		all.WriteString(line + "\n")
		if m := submittedRE.FindStringSubmatch(line); m != nil && submitted == 0 {
			submitted = time.Since(start)
			maps, _ = strconv.Atoi(m[1])
		}
	}
	if err := cmd.Wait(); err != nil {
		b.Fatalf("shoal %v: %v: %s", args, err, all.String())
	}
	return submitted, maps, all.String()
}
