package e2e

import (
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

// perByteRounds is how many times wordCountPerByte runs each corpus: at 8
// GiB three rounds of (1 GiB, 8 GiB) take about five minutes of jobs.
const perByteRounds = 3

// perByteSmall is the size the per-byte aim compares against.
const perByteSmall = 1 << 30

// perByteCorpus is one of the two corpora wordCountPerByte alternates.
type perByteCorpus struct {
	name, path string // name in logs and profile files; path in the cluster
	size       int64
	sum        string // sortedLinesSum of its two-goroutine count
}

// wordCountPerByte measures wordcount's per-byte aim side by side in one
// run: on the cluster that already stores the SHOAL_BENCH_BYTES corpus
// (big, at stored; input is its local copy, baseline its two-goroutine
// count if that sub-benchmark ran) it stores a 1 GiB corpus from the same
// generator and seed — the big corpus's first GiB, since the generator's
// output for a smaller size is a prefix of a larger one's, so its blocks
// are the big corpus's first blocks and both jobs count the same text —
// then runs wordcount on the two alternately, 1 GiB first, perByteRounds
// times each, checking every output against its corpus's two-goroutine
// count. It reports the medians of both corpora's seconds and agents'
// CPU-seconds per GiB and their ratios (x-per-byte-vs-1GiB: the aim is
// <= 1.1), and logs, per run, each agent's user and system CPU, its
// minor faults and the counters that moved, and the kernel's paging
// counters.
func wordCountPerByte(b *testing.B, c *benchCluster, dir, input, stored, baseline string, n int64) {
	b.StopTimer()
	if _, err := os.Stat(baseline); err != nil { // two-goroutines did not run
		if err := twoGoroutineWordCount(input, baseline); err != nil {
			b.Fatal(err)
		}
	}
	big := perByteCorpus{name: fmt.Sprintf("%dGiB", n>>30), path: stored, size: n, sum: sortedLinesSum(b, baseline)}
	if n%(1<<30) != 0 {
		big.name = fmt.Sprintf("%dB", n)
	}
	smallInput := filepath.Join(dir, "corpus-1GiB.txt")
	if out, err := exec.Command(shoalBin, "gen", "text", "--bytes", strconv.Itoa(perByteSmall), "--seed", "1", "--output", smallInput).CombinedOutput(); err != nil {
		b.Fatalf("gen: %v %s", err, out)
	}
	c.timedCLI(b, "fs", "put", smallInput, "/bench/corpus-1GiB.txt", "--block-size", "64MB")
	smallBaseline := filepath.Join(dir, "baseline-1GiB.out")
	if err := twoGoroutineWordCount(smallInput, smallBaseline); err != nil {
		b.Fatal(err)
	}
	small := perByteCorpus{name: "1GiB", path: "/bench/corpus-1GiB.txt", size: perByteSmall, sum: sortedLinesSum(b, smallBaseline)}
	os.Remove(smallInput)
	b.SetBytes(perByteRounds * (n + perByteSmall))
	b.StartTimer()
	for i := 0; i < b.N; i++ {
		// Seconds and agents' CPU-seconds per GiB of each run: [0] of
		// the 1 GiB corpus, [1] of the big one.
		var secs, cpus [2][]float64
		for round := range perByteRounds {
			for k, cor := range []perByteCorpus{small, big} {
				gib := float64(cor.size) / (1 << 30)
				b.StopTimer()
				snap0, vm0 := c.snapshot(b), vmstat()
				prof := c.profile(b, fmt.Sprintf("wordcount-%s-%d", cor.name, round), time.Duration(10*gib)*time.Second)
				m0 := readMachineCPU()
				b.StartTimer()
				out := benchOutput(fmt.Sprintf("/bench/wc-per-byte-%d-%s", round, cor.name))
				d, _ := c.timedCLI(b, "job", "run", "wordcount", "--input", cor.path, "--output", out, "--reducers", "3")
				m1 := readMachineCPU()
				b.StopTimer() // diagnostics and checking the output are not part of the count
				vm1, snap1 := vmstat(), c.snapshot(b)
				var cpu time.Duration
				for node, s := range snap1 {
					cpu += s.cpu - snap0[node].cpu
				}
				secs[k] = append(secs[k], d.Seconds()/gib)
				cpus[k] = append(cpus[k], cpu.Seconds()/gib)
				b.Logf("%s, round %d: %.2f s/GiB, %.2f agents' cpu-s/GiB; the machine's CPUs busy %.1f s, %.1f s of it not the agents', %.1f s stolen; memory after it: %s",
					cor.name, round, d.Seconds()/gib, cpu.Seconds()/gib, (m1.busy - m0.busy).Seconds(), (m1.busy - m0.busy - cpu).Seconds(), (m1.steal - m0.steal).Seconds(), memInfo())
				logVMStat(b, vm0, vm1)
				logDiff(b, snap0, snap1)
				prof()
				mine := filepath.Join(dir, "per-byte.out")
				c.timedCLI(b, "fs", "getmerge", out, mine)
				if sortedLinesSum(b, mine) != cor.sum {
					b.Fatalf("wordcount output of the %s corpus differs from the two-goroutine count's", cor.name)
				}
				os.Remove(mine)
				b.StartTimer()
			}
		}
		one, many := medianOf(secs[0]), medianOf(secs[1])
		b.ReportMetric(one, "1GiB-s/GiB")
		b.ReportMetric(many, "s/GiB")
		b.ReportMetric(many/one, "x-per-byte-vs-1GiB")
		b.ReportMetric(medianOf(cpus[0]), "1GiB-cpu-s/GiB")
		b.ReportMetric(medianOf(cpus[1]), "cpu-s/GiB")
		b.ReportMetric(medianOf(cpus[1])/medianOf(cpus[0]), "cpu-x-per-byte-vs-1GiB")
	}
	b.ReportMetric(float64(c.nodePeak(b))/(1<<20), "node-peak-MiB")
}

// medianOf is the middle value of xs (the mean of the two middle ones for
// an even count); xs is not changed.
func medianOf(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// memInfo is the kernel's free memory and page cache, from /proc/meminfo:
// what a run had to take pages from.
func memInfo() string {
	data, _ := os.ReadFile("/proc/meminfo")
	var f []string
	for _, line := range strings.Split(string(data), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if ok && (name == "MemFree" || name == "Cached" || name == "Dirty") {
			f = append(f, name+" "+strings.Join(strings.Fields(v), " "))
		}
	}
	return strings.Join(f, ", ")
}

// machineCPU is the time all CPUs of the machine spent busy (not idle nor
// waiting for I/O) and the time the hypervisor ran something else while
// a CPU of this VM wanted to run, from /proc/stat.
type machineCPU struct {
	busy, steal time.Duration
}

func readMachineCPU() machineCPU {
	data, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return machineCPU{}
	}
	tick := func(i int) time.Duration {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		return time.Duration(v) * 10 * time.Millisecond // USER_HZ = 100
	}
	return machineCPU{busy: tick(1) + tick(2) + tick(3) + tick(6) + tick(7), steal: tick(8)}
}
