package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nodeSnapshot is one agent's CPU time and the counters of its /metrics
// at one moment.
type nodeSnapshot struct {
	cpu     time.Duration
	stat    cpuStat
	metrics map[string]float64
}

// cpuStat is a process's user and system CPU time and its page faults,
// from /proc/PID/stat.
type cpuStat struct {
	utime, stime time.Duration
	minflt       int64
}

func readCPUStat(pid string) cpuStat {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return cpuStat{}
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return cpuStat{}
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return cpuStat{}
	}
	minflt, _ := strconv.ParseInt(f[7], 10, 64)
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return cpuStat{utime: time.Duration(utime) * 10 * time.Millisecond, stime: time.Duration(stime) * 10 * time.Millisecond, minflt: minflt}
}

// vmstat reads the kernel's counters of huge-page faults and memory
// compaction (a sort buffer faulted in without huge pages, or after direct
// compaction, costs seconds of system time on this VM), of page faults, of
// disk reads and writes (pgpgin, pgpgout: KiB) and of page reclaim
// (pgscan_*, pgsteal_*: pages scanned and taken back by kswapd or by a
// process waiting for memory).
func vmstat() map[string]int64 {
	data, _ := os.ReadFile("/proc/vmstat")
	m := map[string]int64{}
	for _, line := range strings.Split(string(data), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if ok && (strings.HasPrefix(name, "thp_fault") || strings.HasPrefix(name, "compact_") || name == "pgfault" || name == "pgmajfault" ||
			name == "pgpgin" || name == "pgpgout" || strings.HasPrefix(name, "pgscan_") || strings.HasPrefix(name, "pgsteal_")) {
			m[name], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return m
}

// logVMStat logs the counters of vmstat that moved between a and z.
func logVMStat(b *testing.B, a, z map[string]int64) {
	var moved []string
	for name, v := range z {
		if d := v - a[name]; d != 0 {
			moved = append(moved, fmt.Sprintf("%s=%d", name, d))
		}
	}
	sort.Strings(moved)
	b.Logf("vmstat: %s", strings.Join(moved, " "))
}

// diagPrefixes are the series the per-run diagnosis reports: what the
// nodes' tasks, shuffle, block store and background loops did, and Go's
// GC cycles.
var diagPrefixes = []string{
	"shoal_task_attempts_total", "shoal_shuffle_", "shoal_spill_bytes_total",
	"shoal_blocks_scrubbed_bytes_total", "shoal_antientropy_bytes_total",
	"shoal_repair_fetched_total", "shoal_block_read_bytes_total",
	"shoal_blocks_written_total", "shoal_block_writes_total",
	"go_gc_duration_seconds_count",
}

// snapshot takes every agent's CPU time and counters.
func (c *benchCluster) snapshot(b *testing.B) map[string]nodeSnapshot {
	snaps := map[string]nodeSnapshot{}
	for node, s := range parseStatus(b, runScript(b, c.lc, "status").stdout) {
		snap := nodeSnapshot{cpu: cpuTime(s[0]), stat: readCPUStat(s[0]), metrics: map[string]float64{}}
		text, err := clientFor(b, c.lc, s[1]).Metrics(context.Background())
		if err != nil {
			b.Logf("%s: metrics: %v", node, err)
		}
		for _, line := range strings.Split(text, "\n") {
			name, v, ok := strings.Cut(line, " ")
			if !ok || strings.HasPrefix(line, "#") {
				continue
			}
			for _, p := range diagPrefixes {
				if strings.HasPrefix(name, p) {
					f, _ := strconv.ParseFloat(v, 64)
					snap.metrics[name] = f
				}
			}
		}
		snaps[node] = snap
	}
	return snaps
}

// logDiff logs, per agent, the CPU time and every counter that moved
// between two snapshots, so that a run that burned more CPU than another
// of the same build shows where.
func logDiff(b *testing.B, before, after map[string]nodeSnapshot) {
	nodes := make([]string, 0, len(after))
	for n := range after {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		a, z := before[n], after[n]
		var moved []string
		for name, v := range z.metrics {
			if d := v - a.metrics[name]; d != 0 {
				moved = append(moved, fmt.Sprintf("%s=%g", strings.TrimPrefix(name, "shoal_"), d))
			}
		}
		sort.Strings(moved)
		b.Logf("%s: cpu %.2f s (user %.2f, sys %.2f), %d minor faults; %s", n, (z.cpu - a.cpu).Seconds(),
			(z.stat.utime - a.stat.utime).Seconds(), (z.stat.stime - a.stat.stime).Seconds(), z.stat.minflt-a.stat.minflt, strings.Join(moved, " "))
	}
}
