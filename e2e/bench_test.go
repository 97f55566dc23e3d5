package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/client"
	"shoal.dev/shoal/clustertest"
)

// Benchmarks of whole operations on a local 3-node cluster. Run them with
// `make bench` (-benchtime 1x: each operation moves SHOAL_BENCH_BYTES, 1 GiB
// by default). Throughput is b.SetBytes's MB/s; peak resident memory of
// the nodes and of the CLI is reported beside it.

func benchBytes() int64 {
	if s := os.Getenv("SHOAL_BENCH_BYTES"); s != "" {
		if v, err := strconv.ParseInt(s, 10, 64); err == nil && v > 0 {
			return v
		}
	}
	return 1 << 30
}

// benchInput writes a text file of n bytes (lines of up to 100 characters)
// once per directory.
func benchInput(b *testing.B, dir string, n int64) string {
	return benchInputOf(b, dir, n, "dog")
}

// benchInputOf is benchInput with lines ending in word: inputs of two
// words share no block, so a put of one finds none of its blocks stored.
func benchInputOf(b *testing.B, dir string, n int64, word string) string {
	p := filepath.Join(dir, fmt.Sprintf("input-%s-%d.txt", word, n))
	if fi, err := os.Stat(p); err == nil && fi.Size() == n {
		return p
	}
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	line := []byte(strings.Repeat("the quick brown fox jumps over the lazy "+word+" ", 3))
	var written int64
	for i := 0; written < n; i++ {
		l := line[:40+i%80]
		l = append(l[:len(l):len(l)], '\n')
		if written+int64(len(l)) > n {
			l = l[:n-written]
		}
		w.Write(l)
		written += int64(len(l))
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return p
}

// peakRSS reads a process's peak resident set (VmHWM) in bytes.
func peakRSS(pid string) int64 {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

type benchCluster struct {
	lc  *localCluster
	url string
	env []string
	// cliCPU is the CPU time (user+system) of the last timedCLI command.
	cliCPU time.Duration
}

func startBenchCluster(b *testing.B, n int) *benchCluster {
	dir := b.TempDir()
	lc := &localCluster{dir: dir, env: []string{
		"SHOAL_CLUSTER_DIR=" + dir, "SHOAL_BIN=" + shoalBin, "SHOAL_HTTP_PORT=0", "SHOAL_GOSSIP_PORT=0",
	}}
	unregister := lc.stopOnTimeout()
	b.Cleanup(func() {
		runScript(b, lc, "stop")
		unregister()
	})
	r := runScript(b, lc, "start", strconv.Itoa(n))
	if r.code != 0 {
		b.Fatalf("start: %s", r.stderr)
	}
	st := parseStatus(b, runScript(b, lc, "status").stdout)
	return &benchCluster{lc: lc, url: st["node1"][1], env: []string{"SHOAL_SECRET_FILE=" + filepath.Join(dir, "secret")}}
}

func runScript(b testing.TB, lc *localCluster, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return runCmd(b, lc.scriptCmd(ctx, args...))
}

func parseStatus(b testing.TB, out string) map[string][2]string {
	st := map[string][2]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			st[f[0]] = [2]string{f[1], f[2]}
		}
	}
	return st
}

// timedCLI runs the CLI and returns its wall time and peak RSS.
func (c *benchCluster) timedCLI(b *testing.B, args ...string) (time.Duration, int64) {
	cmd := exec.Command(shoalBin, append(args, "--addr", c.url)...)
	cmd.Env = append(cleanEnv(), c.env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("shoal %v: %v: %s", args, err, stderr.String())
	}
	d := time.Since(start)
	if line, _, _ := strings.Cut(stdout.String(), "\n"); strings.HasPrefix(line, "job ") {
		b.Logf("%s (command took %s)", line, d.Round(time.Millisecond))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	c.cliCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return d, ru.Maxrss << 10
}

// cpuTime is the user+system CPU time a process has used so far, from
// /proc/PID/stat (clock ticks of 1/100 s), or 0 if it cannot be read.
func cpuTime(pid string) time.Duration {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// nodesCPU is the CPU time the cluster's agents have used so far, summed.
func (c *benchCluster) nodesCPU(b *testing.B) time.Duration {
	var sum time.Duration
	for _, s := range parseStatus(b, runScript(b, c.lc, "status").stdout) {
		sum += cpuTime(s[0])
	}
	return sum
}

func (c *benchCluster) nodePeak(b *testing.B) int64 {
	var peak int64
	for _, s := range parseStatus(b, runScript(b, c.lc, "status").stdout) {
		peak = max(peak, peakRSS(s[0]))
	}
	return peak
}

// BenchmarkFS puts and gets one file on 3 nodes with R = 1 and R = 3 (64 MB
// blocks), and, in the same run, the baselines each is measured against:
// cp+sync (cp of the file, then sync of the copy: the bytes on this disk,
// durably, as a put acknowledges them) for the puts, and cat (the file
// copied into another local file, not synced, as a get writes it) for the
// gets. Each put and get reports x-cp-sync or x-cat: its throughput over
// its baseline's (1 = as fast; the aims are put R=1 >= 0.6 and the gets
// near 1). Every get is checked against the input. The R = 3 put is of
// other bytes than the R = 1 put's, so that it finds none of its blocks
// already stored (a put of stored bytes writes less).
//
// With SHOAL_BENCH_PROFILE set, each put is profiled on every agent for
// putProfile from its start (see benchCluster.profile).
func BenchmarkFS(b *testing.B) {
	n := benchBytes()
	dir := b.TempDir()
	inputs := map[int]string{1: benchInput(b, dir, n), 3: benchInputOf(b, dir, n, "cat")}
	wants := map[int]string{1: fileSumTB(b, inputs[1]), 3: fileSumTB(b, inputs[3])}
	input := inputs[1]
	c := startBenchCluster(b, 3)

	var cpSync, cat time.Duration
	subBench(b, "cp+sync", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			dst := filepath.Join(dir, "copy")
			b.StopTimer()
			syncDisks()
			b.StartTimer()
			start := time.Now()
			if out, err := exec.Command("cp", input, dst).CombinedOutput(); err != nil {
				b.Fatalf("cp: %v %s", err, out)
			}
			if out, err := exec.Command("sync", dst).CombinedOutput(); err != nil {
				b.Fatalf("sync: %v %s", err, out)
			}
			cpSync = time.Since(start)
			os.Remove(dst)
		}
	})
	subBench(b, "cat", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			dst := filepath.Join(dir, "cat")
			b.StopTimer()
			syncDisks()
			b.StartTimer()
			start := time.Now()
			cmd := exec.Command("sh", "-c", `cat "$1" > "$2"`, "cat", input, dst)
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("cat: %v %s", err, out)
			}
			cat = time.Since(start)
			os.Remove(dst)
		}
	})
	ratio := func(b *testing.B, base, d time.Duration, unit string) {
		if base > 0 && d > 0 {
			b.ReportMetric(base.Seconds()/d.Seconds(), unit)
		}
	}
	for _, r := range []int{1, 3} {
		subBench(b, fmt.Sprintf("put/R=%d", r), func(b *testing.B) {
			b.SetBytes(n)
			var cli int64
			var cpu, cliCPU time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				syncDisks()
				prof := c.profile(b, fmt.Sprintf("put-R%d", r), putProfile)
				cpu0 := c.nodesCPU(b)
				b.StartTimer()
				d, rss := c.timedCLI(b, "fs", "put", inputs[r], fmt.Sprintf("/bench/r%d", r), "--replication", strconv.Itoa(r), "--block-size", "64MB", "--force")
				b.StopTimer()
				cpu += c.nodesCPU(b) - cpu0
				cliCPU += c.cliCPU
				prof()
				b.StartTimer()
				cli = max(cli, rss)
				ratio(b, cpSync, d, "x-cp-sync")
			}
			// The agents' CPU (user+system) per GiB put, summed.
			b.ReportMetric(cpu.Seconds()/float64(b.N)/(float64(n)/(1<<30)), "agents-cpu-s/GiB")
			// The CLI's, whose hashing and sending share the same cores.
			b.ReportMetric(cliCPU.Seconds()/float64(b.N)/(float64(n)/(1<<30)), "cli-cpu-s/GiB")
			b.ReportMetric(float64(cli)/(1<<20), "cli-peak-MiB")
			b.ReportMetric(float64(c.nodePeak(b))/(1<<20), "node-peak-MiB")
		})
		subBench(b, fmt.Sprintf("get/R=%d", r), func(b *testing.B) {
			b.SetBytes(n)
			var cli int64
			for i := 0; i < b.N; i++ {
				out := filepath.Join(dir, "out")
				b.StopTimer()
				syncDisks()
				b.StartTimer()
				d, rss := c.timedCLI(b, "fs", "get", fmt.Sprintf("/bench/r%d", r), out)
				cli = max(cli, rss)
				ratio(b, cat, d, "x-cat")
				b.StopTimer()
				if got := fileSumTB(b, out); got != wants[r] {
					b.Fatalf("get /bench/r%d: the bytes differ from the input", r)
				}
				os.Remove(out)
				b.StartTimer()
			}
			b.ReportMetric(float64(cli)/(1<<20), "cli-peak-MiB")
			b.ReportMetric(float64(c.nodePeak(b))/(1<<20), "node-peak-MiB")
		})
	}
}

// putProfile is how long BenchmarkFS profiles the agents from the start of
// each put, with SHOAL_BENCH_PROFILE set: a 1 GiB put at 70 MB/s or faster.
const putProfile = 15 * time.Second

// isSpace marks ASCII whitespace, where wordcount splits words.
var isSpace = [256]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// countWords counts the words of path's bytes [from, to) into counts.
func countWords(path string, from, to int64, counts map[string]int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(io.NewSectionReader(f, from, to-from), 1<<20)
	var word []byte
	buf := make([]byte, 1<<20)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if !isSpace[c] {
				word = append(word, c)
			} else if len(word) > 0 {
				counts[string(word)]++
				word = word[:0]
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if len(word) > 0 {
		counts[string(word)]++
	}
	return nil
}

// twoGoroutineWordCount is wordcount's baseline: a plain Go count of one
// local file in one process on two goroutines (one per core of the bench
// machine), each counting half of the file (cut at a whitespace byte) into
// its own map, merged at the end; output "word\tcount" lines sorted by
// word.
func twoGoroutineWordCount(path, out string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	mid, err := cutAtSpace(path, fi.Size()/2)
	if err != nil {
		return err
	}
	halves := [2]map[string]int64{{}, {}}
	errs := make(chan error, 2)
	go func() { errs <- countWords(path, 0, mid, halves[0]) }()
	go func() { errs <- countWords(path, mid, fi.Size(), halves[1]) }()
	for range 2 {
		if err := <-errs; err != nil {
			return err
		}
	}
	counts := halves[0]
	for w, n := range halves[1] {
		counts[w] += n
	}
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	sort.Strings(words)
	o, err := os.Create(out)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(o)
	for _, w := range words {
		fmt.Fprintf(bw, "%s\t%d\n", w, counts[w])
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return o.Close()
}

// cutAtSpace returns the offset of the first whitespace byte at or after
// at (or the file's size), so that no word spans it.
func cutAtSpace(path string, at int64) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReader(io.NewSectionReader(f, at, 1<<62))
	for off := at; ; off++ {
		c, err := r.ReadByte()
		if err == io.EOF || err == nil && isSpace[c] {
			return off, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// sortedLinesSum is the SHA-256 of a file's lines sorted: the same for
// two outputs holding the same lines in any order (wordcount's parts are
// in hash order, the baseline's in word order).
func sortedLinesSum(b testing.TB, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	sort.Slice(lines, func(i, j int) bool { return bytes.Compare(lines[i], lines[j]) < 0 })
	h := sha256.New()
	for _, l := range lines {
		h.Write(l)
		h.Write([]byte("\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// benchRuns numbers the outputs benchmarks write to a cluster they share
// between runs.
var benchRuns atomic.Int64

// benchOutput is a path for one run's output that no earlier run in this
// process used. With -count above 1 the testing package runs a
// sub-benchmark again with the same b.N against the cluster its parent
// started, so a name made of b.N and the loop index would repeat, and the
// job would refuse the existing output.
func benchOutput(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, benchRuns.Add(1))
}

// BenchmarkWordCount runs wordcount over a generated corpus already stored
// on a 3-node cluster, and the two-goroutine baseline on the same file, in
// the same run, and checks the cluster's output is the baseline's; then
// Python streaming, and the end-to-end latency of a job over 1 KB.
// x-two-goroutines is the cluster's time over the baseline's; s/GiB the
// cluster's seconds per GiB of input. With SHOAL_BENCH_BYTES over 1 GiB,
// per-byte-vs-1GiB also compares the time per byte with a 1 GiB corpus's
// on the same cluster (see wordCountPerByte).
func BenchmarkWordCount(b *testing.B) {
	n := benchBytes()
	dir := b.TempDir()
	input := filepath.Join(dir, "corpus.txt")
	if out, err := exec.Command(shoalBin, "gen", "text", "--bytes", strconv.FormatInt(n, 10), "--seed", "1", "--output", input).CombinedOutput(); err != nil {
		b.Fatalf("gen: %v %s", err, out)
	}
	c := startBenchCluster(b, 3)
	if _, rss := c.timedCLI(b, "fs", "put", input, "/bench/corpus.txt", "--block-size", "64MB"); rss == 0 {
		b.Fatal("put")
	}
	small := filepath.Join(dir, "small.txt")
	os.WriteFile(small, bytes.Repeat([]byte("one two three four five six\n"), 36), 0o600)
	c.timedCLI(b, "fs", "put", small, "/bench/small.txt")

	var single, cluster time.Duration
	baseline := filepath.Join(dir, "baseline.out")
	subBench(b, "two-goroutines", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			start := time.Now()
			if err := twoGoroutineWordCount(input, baseline); err != nil {
				b.Fatal(err)
			}
			single = time.Since(start)
		}
	})
	subBench(b, "cluster-3-nodes", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			out := benchOutput("/bench/wc")
			prof := c.profile(b, "wordcount", single)
			cpu0 := c.nodesCPU(b)
			d, _ := c.timedCLI(b, "job", "run", "wordcount", "--input", "/bench/corpus.txt", "--output", out, "--reducers", "3")
			cluster = d
			b.ReportMetric((c.nodesCPU(b)-cpu0).Seconds()/(float64(n)/(1<<30)), "cpu-s/GiB")
			b.StopTimer() // profiles and checking the output are not part of the count
			prof()
			mine := filepath.Join(dir, "cluster.out")
			c.timedCLI(b, "fs", "getmerge", out, mine)
			if single > 0 && sortedLinesSum(b, mine) != sortedLinesSum(b, baseline) {
				b.Fatal("wordcount output differs from the two-goroutine count's")
			}
			os.Remove(mine)
			b.StartTimer()
		}
		b.ReportMetric(float64(c.nodePeak(b))/(1<<20), "node-peak-MiB")
		b.ReportMetric(cluster.Seconds()/(float64(n)/(1<<30)), "s/GiB")
		if single > 0 {
			b.ReportMetric(cluster.Seconds()/single.Seconds(), "x-two-goroutines")
		}
	})
	if n > perByteSmall {
		subBench(b, "per-byte-vs-1GiB", func(b *testing.B) {
			wordCountPerByte(b, c, dir, input, "/bench/corpus.txt", baseline, n)
		})
	}
	subBench(b, "python-streaming-3-nodes", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			d, _ := c.timedCLI(b, "streaming", "-input", "/bench/corpus.txt", "-output", benchOutput("/bench/py"),
				"-mapper", "python3 mapper.py", "-reducer", "python3 reducer.py", "-numReduceTasks", "3",
				"-file", script("mapper.py"), "-file", script("reducer.py"))
			if single > 0 {
				b.ReportMetric(d.Seconds()/single.Seconds(), "x-two-goroutines")
			}
		}
	})
	subBench(b, "latency-1KB", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			c.timedCLI(b, "job", "run", "wordcount", "--input", "/bench/small.txt", "--output", benchOutput("/bench/small"))
		}
	})
}

// BenchmarkTeraSort sorts teragen output (SHOAL_BENCH_BYTES of records,
// stored with R = 1) on a 3-node cluster with output R = 1, and, in the same
// run, the same records with LC_ALL=C sort -S 256M; then checks both
// outputs are the same bytes and runs teravalidate (which fails the run if
// anything is wrong). SHOAL_BENCH_BYTES=8589934592 is the 8 GiB run (it
// needs about 35 GiB of free disk). cpu-s is the CPU time (user+system)
// of GNU sort, and of the 3 agents during the job; cpu-x-gnu-sort their
// ratio, which other work on the machine shifts less than wall time.
func BenchmarkTeraSort(b *testing.B) {
	rows := benchBytes() / 100
	dir := b.TempDir()
	c := startBenchCluster(b, 3)
	c.timedCLI(b, "job", "run", "teragen", "--param", fmt.Sprintf("rows=%d", rows), "--output", "/tera/in", "--replication", "1")
	records := filepath.Join(dir, "records")
	c.timedCLI(b, "fs", "getmerge", "/tera/in", records)
	gnu := filepath.Join(dir, "gnu-sorted")
	var gnuTime, gnuCPU time.Duration
	subBench(b, "gnu-sort", func(b *testing.B) {
		b.SetBytes(rows * 100)
		for i := 0; i < b.N; i++ {
			cmd := exec.Command("sort", "-S", "256M", "-o", gnu, records)
			cmd.Env = append(os.Environ(), "LC_ALL=C")
			b.StopTimer()
			syncDisks()
			b.StartTimer()
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("sort: %v %s", err, out)
			}
			gnuTime = time.Since(start)
			gnuCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			b.ReportMetric(gnuCPU.Seconds(), "cpu-s")
		}
	})
	// Only GNU sort's checksum is kept: at 8 GiB the disk need not hold
	// the records and the sorted copy beside the cluster's files.
	gnuSum := fileSumTB(b, gnu)
	os.Remove(records)
	os.Remove(gnu)
	subBench(b, "terasort-3-nodes", func(b *testing.B) {
		b.SetBytes(rows * 100)
		for i := 0; i < b.N; i++ {
			out := benchOutput("/tera/sorted")
			b.StopTimer()
			syncDisks()
			snap0, vm0 := c.snapshot(b), vmstat()
			b.StartTimer()
			prof := c.profile(b, "terasort", gnuTime)
			cpu0 := c.nodesCPU(b)
			d, _ := c.timedCLI(b, "job", "run", "terasort", "--input", "/tera/in", "--output", out, "--reducers", "6", "--replication", "1")
			cpu := c.nodesCPU(b) - cpu0
			vm1 := vmstat()
			if gnuTime > 0 {
				b.ReportMetric(d.Seconds()/gnuTime.Seconds(), "x-gnu-sort")
			}
			b.ReportMetric(cpu.Seconds(), "cpu-s")
			if gnuCPU > 0 {
				b.ReportMetric(cpu.Seconds()/gnuCPU.Seconds(), "cpu-x-gnu-sort")
			}
			b.StopTimer() // profiles and checking the output are not part of the sort
			logVMStat(b, vm0, vm1)
			logDiff(b, snap0, c.snapshot(b))
			prof()
			b.ReportMetric(float64(c.nodePeak(b))/(1<<20), "node-peak-MiB")
			mine := filepath.Join(dir, "shoal-sorted")
			c.timedCLI(b, "fs", "getmerge", out, mine)
			if fileSumTB(b, mine) != gnuSum {
				b.Fatal("terasort output differs from LC_ALL=C sort")
			}
			os.Remove(mine)
			c.timedCLI(b, "job", "run", "teravalidate", "--input", out, "--output", out+"-valid")
			b.StartTimer()
		}
	})
}

func fileSumTB(b testing.TB, path string) string {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// syncDisks flushes dirty pages before a timed phase: GNU sort does not
// fsync its output, Shoal does, and neither should pay for the writeback
// of what ran before it.
func syncDisks() { exec.Command("sync").Run() }

// BenchmarkPutNodeLoss puts one file in 1 MB blocks at R = 3 on 5 nodes:
// from a local file (the resumable put), from stdin (the agent cuts the
// blocks), and from a local file while a node other than the client's is
// killed -9 once half the blocks are stored, in the same run.
func BenchmarkPutNodeLoss(b *testing.B) {
	n := benchBytes()
	dir := b.TempDir()
	input := benchInput(b, dir, n)
	c := startBenchCluster(b, 5)
	putCmd := func(name string, stdin bool) error {
		args := []string{"fs", "put", input, "/bench/" + name, "--block-size", "1MB", "--force"}
		if stdin {
			args[2] = "-"
		}
		cmd := exec.Command(shoalBin, append(args, "--addr", c.url)...)
		cmd.Env = append(cleanEnv(), c.env...)
		if stdin {
			f, err := os.Open(input)
			if err != nil {
				return err
			}
			defer f.Close()
			cmd.Stdin = f
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %v: %s", args, err, out)
		}
		return nil
	}
	put := func(b *testing.B, name string, stdin bool) {
		if err := putCmd(name, stdin); err != nil {
			b.Fatal(err)
		}
	}
	subBench(b, "healthy/local", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			put(b, "local", false)
		}
	})
	subBench(b, "healthy/stdin", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			put(b, "stdin", true)
		}
	})
	subBench(b, "kill-one/local", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			st := parseStatus(b, runScript(b, c.lc, "status").stdout)
			// The CLI hands each block to its first owner, whose writer
			// stores it (node1's writer stores only its share), so the
			// put's progress is the sum over the nodes.
			clients := map[string]*client.Client{}
			for name, s := range st {
				clients[name] = clientFor(b, c.lc, s[1])
			}
			sum := func(metric string, skip string) (n int64) {
				for name, cl := range clients {
					if name != skip {
						n += max(metricOf(cl, metric), 0)
					}
				}
				return n
			}
			base := sum("shoal_block_writes_total", "")
			var putErr error
			done := make(chan struct{})
			go func() {
				defer close(done)
				putErr = putCmd("kill", false)
			}()
			// node1 takes the put; kill node2..node5, whichever the
			// iteration picks, once half the blocks are stored.
			victim := fmt.Sprintf("node%d", 2+i%4)
			half := n / (1 << 20) / 2
			ended := false
			if err := clustertest.Wait(5*time.Minute, func() error {
				select {
				case <-done:
					ended = true
					return nil
				default:
				}
				if w := sum("shoal_block_writes_total", "") - base; w < half {
					return fmt.Errorf("%d of %d blocks", w, half)
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
			if ended {
				b.Fatalf("the put ended (err %v) before %d of its blocks were stored: no node was killed", putErr, half)
			}
			var pid int
			fmt.Sscan(st[victim][0], &pid)
			syscall.Kill(pid, syscall.SIGKILL)
			<-done
			if putErr != nil {
				b.Fatal(putErr)
			}
			b.StopTimer()
			b.Logf("killed %s after %d blocks; %d writes needed a substitute", victim, half, sum("shoal_block_writes_substituted_total", victim))
			if r := runScript(b, c.lc, "start"); r.code != 0 {
				b.Fatalf("restart: %s", r.stderr)
			}
			b.StartTimer()
		}
	})
}
