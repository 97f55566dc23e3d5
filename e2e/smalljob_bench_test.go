package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/client"
)

// smallJobRuns is how many one-line jobs BenchmarkSmallJob runs per
// iteration (SHOAL_BENCH_SMALL_RUNS overrides it).
func smallJobRuns() int {
	if n, err := strconv.Atoi(os.Getenv("SHOAL_BENCH_SMALL_RUNS")); err == nil && n > 0 {
		return n
	}
	return 20
}

// smallPhases are the legs of one job's critical path, in order; their
// sum is the CLI's wall time. Each leg ends at a time the cluster records
// (the job's SubmittedAt and EndedAt, its attempts' start and end) or the
// benchmark sees (the CLI's output lines, its exit); the nodes share this
// machine's clock.
var smallPhases = []struct{ name, what string }{
	{"submit", "CLI start to the job's SubmittedAt: process start, request, metadata sync, output reservation, planning"},
	{"to-map", "SubmittedAt to the map's start: spec block, job record, the mapper learning of it"},
	{"map", "the map attempt, start to end"},
	{"to-reduce-end", "map end to reduce end: the reducer learning of the map, fetch, reduce, output commit"},
	{"to-end-record", "reduce end to the job's EndedAt: the ender learning of the commit, _SUCCESS, the end record"},
	{"to-print", "EndedAt to the CLI printing the result: how the CLI learns the job ended"},
	{"exit", "the result printed to the CLI's exit"},
}

// BenchmarkSmallJob runs wordcount over a one-line file on a 3-node local
// cluster smallJobRuns times, each from `shoal job run` to its printed
// result, and reports the median and max wall time and the median of each
// leg of smallPhases. The first run's output is checked against the same
// job run sequentially (job run --local).
func BenchmarkSmallJob(b *testing.B) {
	dir := b.TempDir()
	input := filepath.Join(dir, "one-line.txt")
	if err := os.WriteFile(input, []byte("the quick brown fox jumps over the lazy dog the end\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	local := filepath.Join(dir, "local")
	if out, err := exec.Command(shoalBin, "job", "run", "wordcount", "--local", "--input", input, "--output", local).CombinedOutput(); err != nil {
		b.Fatalf("local run: %v %s", err, out)
	}
	want := localPartsB(b, local)
	c := startBenchCluster(b, 3)
	c.timedCLI(b, "fs", "put", input, "/small/one-line.txt")
	cl := clientFor(b, c.lc, c.url)
	runs := smallJobRuns()

	for i := 0; i < b.N; i++ {
		var walls, cliCPU []time.Duration
		legs := make([][]time.Duration, len(smallPhases))
		agents0 := c.agentsCPU(b)
		for r := 0; r < runs; r++ {
			out := fmt.Sprintf("/small/out-%d-%d-%d", b.N, i, r)
			wall, cpu, ph := c.smallJob(b, cl, out)
			walls = append(walls, wall)
			cliCPU = append(cliCPU, cpu)
			for k, d := range ph {
				legs[k] = append(legs[k], d)
			}
			if r == 0 {
				b.StopTimer()
				if got := c.catParts(b, out); got != want {
					b.Fatalf("cluster output %q differs from the sequential run's %q", got, want)
				}
				b.StartTimer()
			}
		}
		agents := (c.agentsCPU(b) - agents0) / time.Duration(runs)
		slices.Sort(walls)
		b.ReportMetric(float64(median(cliCPU).Microseconds())/1000, "cli-cpu-ms")
		b.ReportMetric(float64(agents.Microseconds())/1000, "agents-cpu-ms/job")
		b.ReportMetric(median(walls).Seconds(), "median-s")
		b.ReportMetric(walls[len(walls)-1].Seconds(), "max-s")
		for k, p := range smallPhases {
			b.ReportMetric(float64(median(legs[k]).Microseconds())/1000, p.name+"-ms")
		}
		b.Logf("%d one-line jobs: median %s, max %s; median of each leg:", runs, median(walls).Round(time.Millisecond), walls[len(walls)-1].Round(time.Millisecond))
		for k, p := range smallPhases {
			b.Logf("  %-14s %7.1f ms  %s", p.name, float64(median(legs[k]).Microseconds())/1000, p.what)
		}
		b.Logf("CPU per job: the CLI %s (median, user+system), the 3 agents %s (all their CPU over the runs, idle work included, per job)",
			median(cliCPU).Round(time.Millisecond), agents.Round(time.Millisecond))
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// agentsCPU is the CPU time (user+system) the cluster's agents have used.
func (c *benchCluster) agentsCPU(b *testing.B) time.Duration {
	var total time.Duration
	for _, s := range parseStatus(b, runScript(b, c.lc, "status").stdout) {
		stat, err := os.ReadFile("/proc/" + s[0] + "/stat")
		if err != nil {
			b.Fatal(err)
		}
		// Fields after the command's closing parenthesis: utime and stime
		// are the 14th and 15th of the line, in clock ticks (100 a second).
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		for _, v := range f[11:13] {
			t, _ := strconv.ParseInt(v, 10, 64)
			total += time.Duration(t) * 10 * time.Millisecond
		}
	}
	return total
}

// smallJob runs one job from the CLI and returns its wall time, the CLI's
// CPU time and the legs of smallPhases.
func (c *benchCluster) smallJob(b *testing.B, cl *client.Client, out string) (time.Duration, time.Duration, []time.Duration) {
	cmd := exec.Command(shoalBin, "job", "run", "wordcount", "--input", "/small/one-line.txt", "--output", out, "--addr", c.url)
	cmd.Env = append(cleanEnv(), c.env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu      sync.Mutex
		printed time.Time // the "job ID succeeded" line
		text    strings.Builder
		wg      sync.WaitGroup
	)
	read := func(r io.Reader) {
		defer wg.Done()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			at := time.Now()
			mu.Lock()
			if strings.HasPrefix(sc.Text(), "job ") && printed.IsZero() {
				printed = at
			}
			text.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	wg.Add(2)
	go read(stdout)
	go read(stderr)
	wg.Wait()
	err = cmd.Wait()
	exit := time.Now()
	if err != nil {
		b.Fatalf("job run %s: %v\n%s", out, err, text.String())
	}
	id := ""
	for _, f := range strings.Fields(text.String()) {
		if strings.HasPrefix(f, "job-") {
			id = strings.TrimSuffix(f, ":")
			break
		}
	}
	b.StopTimer()
	defer b.StartTimer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := cl.Job(ctx, id)
	if err != nil {
		b.Fatalf("status of %q: %v\n%s", id, err, text.String())
	}
	logs, err := cl.TaskLogs(ctx, id, "")
	if err != nil {
		b.Fatal(err)
	}
	var mapStart, mapEnd, reduceEnd time.Time
	for _, a := range logs.Attempts {
		if a.Result != "succeeded" {
			continue
		}
		if strings.HasPrefix(a.Task, "m-") {
			if mapStart.IsZero() || a.Start.Before(mapStart) {
				mapStart = a.Start
			}
			if a.End.After(mapEnd) {
				mapEnd = a.End
			}
		} else if a.End.After(reduceEnd) {
			reduceEnd = a.End
		}
	}
	if mapStart.IsZero() || reduceEnd.IsZero() || printed.IsZero() {
		b.Fatalf("job %s: missing a map or reduce attempt or the printed result: %+v\n%s", id, logs, text.String())
	}
	marks := []time.Time{start, time.Unix(0, st.SubmittedAt), mapStart, mapEnd, reduceEnd, time.Unix(0, st.EndedAt), printed, exit}
	legs := make([]time.Duration, len(marks)-1)
	for k := range legs {
		legs[k] = marks[k+1].Sub(marks[k])
	}
	return exit.Sub(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), legs
}

// catParts returns the concatenated part files of a job's output.
func (c *benchCluster) catParts(b *testing.B, out string) string {
	cmd := exec.Command(shoalBin, "fs", "cat", out+"/part-*", "--addr", c.url)
	cmd.Env = append(cleanEnv(), c.env...)
	got, err := cmd.Output()
	if err != nil {
		b.Fatalf("fs cat %s: %v", out, err)
	}
	return string(got)
}

// localPartsB returns the concatenated part files of a local run's output.
func localPartsB(b *testing.B, dir string) string {
	names, err := filepath.Glob(filepath.Join(dir, "part-*"))
	if err != nil || len(names) == 0 {
		b.Fatalf("no part files in %s: %v", dir, err)
	}
	slices.Sort(names)
	var sb strings.Builder
	for _, n := range names {
		data, err := os.ReadFile(n)
		if err != nil {
			b.Fatal(err)
		}
		sb.Write(data)
	}
	return sb.String()
}
