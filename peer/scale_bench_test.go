package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

func envInt(tb testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// jobMetaBytes is what a job costs in the metadata of one node: the sizes
// of its records' keys and values.
func jobMetaBytes(n *peer.Node, id string) (int, int) {
	recs, size := 0, 0
	for _, p := range []string{"job/" + id, "jobstate/" + id, "tasks/" + id + "/", "taskstatus/" + id + "/"} {
		for _, r := range n.Records().Scan(p) {
			recs++
			size += len(r.Key) + len(r.Value)
		}
	}
	return recs, size
}

// settledMeta waits until every node holds the same job records, with no
// tasks record left, and returns their count and bytes.
func settledMeta(tb testing.TB, c *clustertest.Cluster, id string) (int, int) {
	tb.Helper()
	var recs, size int
	clustertest.Eventually(tb, 60*time.Second, func() error {
		for _, n := range c.Running() {
			if k := len(n.Records().Scan("tasks/" + id + "/")); k > 0 {
				return fmt.Errorf("%s still holds %d tasks records", n.Name(), k)
			}
		}
		recs, size = jobMetaBytes(c.Node(0), id)
		return nil
	})
	return recs, size
}

// BenchmarkManyFiles runs wordcount over SHOAL_BENCH_FILES small files
// (default 2,000; the figure is 10,000) on 3 nodes, checks the
// output against the sequential run, and reports the job's metadata after
// it ended.
func BenchmarkManyFiles(b *testing.B) {
	n := envInt(b, "SHOAL_BENCH_FILES", 2000)
	c := clustertest.Start(b, 3, clustertest.Options{})
	t0 := time.Now()
	inputs, order := putManyParallel(b, c, "/many", n)
	report(b, "put %d files in %v", n, time.Since(t0).Round(time.Millisecond))
	want := sequential(b, "wordcount", nil, inputs, order, 3)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := fmt.Sprintf("/many-out-%d", i)
		t0 := time.Now()
		rec, err := c.Node(1).Submit(context.Background(), scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/many"}, Output: out, Reducers: 3})
		if err != nil {
			b.Fatal(err)
		}
		st := waitJob(b, c.Node(2), rec.ID, 30*time.Minute)
		took := time.Since(t0)
		if st.State != scheduler.StateSucceeded {
			b.Fatalf("job %s: %s", st.State, st.Error)
		}
		b.StopTimer()
		waitFiles(b, c.Node(0), out, 4)
		if got, _ := readParts(b, c.Node(0), out); !bytes.Equal(got, want) {
			b.Fatalf("distributed output (%d bytes) differs from sequential (%d bytes)", len(got), len(want))
		}
		recs, size := settledMeta(b, c, rec.ID)
		report(b, "%d files, %d splits (map tasks; small files are packed): job took %v, %d maps launched; spec block %d bytes; after it ended: %d records, %d bytes of metadata per node",
			n, rec.NumSplits, took.Round(time.Millisecond), st.Counters[job.TOTAL_LAUNCHED_MAPS], rec.SpecBytes, recs, size)
		b.ReportMetric(float64(size), "meta-bytes/job")
		b.StartTimer()
	}
}

// putManyParallel is putMany with 8 writers.
func putManyParallel(tb testing.TB, c *clustertest.Cluster, dir string, n int) (map[string][]byte, []string) {
	inputs := make(map[string][]byte, n)
	order := make([]string, n)
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("%s/f%06d.txt", dir, i)
		order[i] = p
		inputs[p] = bytes.Repeat(fmt.Appendf(nil, "w%d common\nw%d x%d\n", i%97, i%13, i%7), 50) // about 1 KB
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				p := order[i]
				if _, err := c.Node(i%c.Len()).FS().Create(context.Background(), p, bytes.NewReader(inputs[p]), blockstore.CreateOptions{BlockSize: blockstore.MinBlockSize, Replication: 1, Overwrite: true}); err != nil { // new paths: no create-if-absent lease, which lapses under this load
					errs <- fmt.Errorf("put %s: %w", p, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
	clustertest.Eventually(tb, 60*time.Second, func() error {
		for _, nd := range c.Running() {
			if got := len(nd.FS().Files()); got < n {
				return fmt.Errorf("%s knows %d of %d files", nd.Name(), got, n)
			}
		}
		return nil
	})
	return inputs, order
}

// genWords is a generator job for the split-count benchmark: split i emits
// three words that depend on i; the reduce sums them (wordcount's).
func genWords(tasks int) job.Spec {
	return job.Spec{Name: "genwords", Usage: "test", Build: func(map[string]string) (*job.Job, error) {
		wc, err := builtinWordcount()
		if err != nil {
			return nil, err
		}
		return &job.Job{
			Generate: tasks,
			NewMapper: func(job.TaskInfo) (job.Mapper, error) {
				return job.MapperFunc(func(key, _ []byte, out job.Emitter) error {
					i, err := strconv.Atoi(string(key))
					if err != nil {
						return err
					}
					for _, w := range []string{"all", "m" + strconv.Itoa(i%1000), "s" + strconv.Itoa(i%7)} {
						if err := out.Emit([]byte(w), []byte("1")); err != nil {
							return err
						}
					}
					return nil
				}), nil
			},
			NewCombiner:     wc.NewCombiner,
			NewReducer:      wc.NewReducer,
			DefaultReducers: 2,
		}, nil
	}}
}

func builtinWordcount() (*job.Job, error) {
	reg := job.NewRegistry()
	builtin.Register(reg)
	return reg.Resolve("wordcount", nil)
}

// BenchmarkGeneratorSplits runs a generator job of SHOAL_BENCH_SPLITS map
// tasks (default 10,000; the figure is 100,000) with a
// wordcount-style reduce on 3 nodes, checks the output against the
// sequential run, and reports its metadata after it ended.
func BenchmarkGeneratorSplits(b *testing.B) {
	n := envInt(b, "SHOAL_BENCH_SPLITS", 10000)
	reg := job.NewRegistry()
	builtin.Register(reg)
	if err := reg.Register(genWords(n)); err != nil {
		b.Fatal(err)
	}
	// SHOAL_BENCH_SLOTS sets each node's task slots (default: the CPU
	// count). Tiny tasks wait on their output's fsyncs, not the CPU.
	slots := envInt(b, "SHOAL_BENCH_SLOTS", runtime.NumCPU())
	c := clustertest.Start(b, 3, clustertest.Options{Registry: reg, Configure: func(_ int, cfg *peer.Config) { cfg.Slots = slots }})
	j, err := reg.Resolve("genwords", nil)
	if err != nil {
		b.Fatal(err)
	}
	parts := map[string]*bytes.Buffer{}
	if _, err := job.RunSequential(context.Background(), j, "seq", nil, nil, 2, func(name string) (io.WriteCloser, error) {
		parts[name] = &bytes.Buffer{}
		return nopWriteCloser{parts[name]}, nil
	}); err != nil {
		b.Fatal(err)
	}
	var want []byte
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range parts {
			if !yield(k) {
				return
			}
		}
	}) {
		want = append(want, parts[name].Bytes()...)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := fmt.Sprintf("/gen-out-%d", i)
		t0 := time.Now()
		rec, err := c.Node(0).Submit(context.Background(), scheduler.SubmitRequest{Name: "genwords", Output: out, Reducers: 2})
		if err != nil {
			b.Fatal(err)
		}
		var peak int
		lastReport := time.Now()
		st := waitJobWatching(b, c, rec.ID, 60*time.Minute, func() {
			for _, nd := range c.Running() {
				for _, r := range nd.Records().Scan("tasks/" + rec.ID + "/") {
					peak = max(peak, len(r.Value))
				}
			}
			if time.Since(lastReport) >= time.Minute {
				lastReport = time.Now()
				if st, err := c.Node(1).Scheduler().Status(rec.ID); err == nil {
					report(b, "after %v: map %d/%d reduce %d/%d", time.Since(t0).Round(time.Second), st.MapsDone, st.Maps, st.ReducesDone, st.Reducers)
				}
			}
		})
		took := time.Since(t0)
		if st.State != scheduler.StateSucceeded {
			b.Fatalf("job %s: %s", st.State, st.Error)
		}
		b.StopTimer()
		waitFiles(b, c.Node(0), out, 3)
		if got, _ := readParts(b, c.Node(0), out); !bytes.Equal(got, want) {
			b.Fatalf("distributed output (%d bytes) differs from sequential (%d bytes)", len(got), len(want))
		}
		recs, size := settledMeta(b, c, rec.ID)
		report(b, "%d splits, %d slots per node: job took %v (%v per split); largest tasks record seen while it ran: %d bytes; after it ended: %d records, %d bytes of metadata per node; counters %d launched maps, %d map input records",
			n, slots, took.Round(time.Millisecond), (took / time.Duration(n)).Round(10*time.Microsecond), peak, recs, size, st.Counters[job.TOTAL_LAUNCHED_MAPS], st.Counters[job.MAP_INPUT_RECORDS])
		b.ReportMetric(float64(size), "meta-bytes/job")
		b.ReportMetric(float64(peak), "max-tasks-record-bytes")
		b.StartTimer()
	}
}

// waitJobWatching waits for a job to end, calling watch on every poll.
func waitJobWatching(tb testing.TB, c *clustertest.Cluster, id string, timeout time.Duration, watch func()) scheduler.Status {
	tb.Helper()
	var st scheduler.Status
	clustertest.Eventually(tb, timeout, func() error {
		watch()
		var err error
		if st, err = c.Node(1).Scheduler().Status(id); err != nil {
			return err
		}
		if st.State == scheduler.StateRunning {
			return fmt.Errorf("job %s running: map %d/%d reduce %d/%d", id, st.MapsDone, st.Maps, st.ReducesDone, st.Reducers)
		}
		return nil
	})
	return st
}

// BenchmarkSoak runs SHOAL_SOAK_JOBS consecutive small wordcount jobs
// (default 60; the figure is 2,000) on 3 nodes with a job history
// of SHOAL_SOAK_HISTORY (default a quarter of the jobs), deleting each
// job's output after it (so only job metadata stays). It prints the median
// end-to-end time of the first and the last 100 jobs (or a quarter, if
// fewer), node1's meta.db size and live record bytes as it goes, and then
// how long a new node takes to join and hold the same records.
func BenchmarkSoak(b *testing.B) {
	jobs := envInt(b, "SHOAL_SOAK_JOBS", 60)
	history := envInt(b, "SHOAL_SOAK_HISTORY", max(1, jobs/4))
	window := min(100, max(1, jobs/4))
	c := clustertest.Start(b, 4, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		cfg.JobHistory = history
		cfg.TombstoneTTL = 30 * time.Second
	}})
	newcomer := c.Config(3)
	c.Leave(3)
	if err := os.RemoveAll(newcomer.DataDir); err != nil {
		b.Fatal(err)
	}
	c.WaitAlive(3, 30*time.Second)
	data := []byte("the quick brown fox\njumps over the lazy dog\nthe end\n")
	put(b, c.Node(0), "/soak/in.txt", data, blockstore.MinBlockSize)
	want := sequential(b, "wordcount", nil, map[string][]byte{"/soak/in.txt": data}, []string{"/soak/in.txt"}, 1)
	metaDB := filepath.Join(c.Config(0).DataDir, "meta.db")
	ctx := context.Background()
	// commits sums the metadata fsyncs of the three nodes.
	commits := func() int64 {
		var n int64
		for i := 0; i < 3; i++ {
			n += c.Node(i).Records().Stats().DiskCommits
		}
		return n
	}
	b.ResetTimer()
	for round := 0; round < b.N; round++ {
		var times []time.Duration
		var fsyncs []int64 // metadata commits of the cluster after each job
		for i := 0; i < jobs; i++ {
			out := fmt.Sprintf("/soak/out-%d-%d", round, i)
			t0 := time.Now()
			rec, err := c.Node(i%3).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/soak/in.txt"}, Output: out, Reducers: 1})
			if err != nil {
				b.Fatal(err)
			}
			st := waitJob(b, c.Node(i%3), rec.ID, 60*time.Second)
			times = append(times, time.Since(t0))
			fsyncs = append(fsyncs, commits())
			if st.State != scheduler.StateSucceeded {
				b.Fatalf("job %d %s: %s", i, st.State, st.Error)
			}
			b.StopTimer()
			// The job's end may reach this node before its output's
			// file records do.
			waitFiles(b, c.Node(i%3), out, 2)
			if i%10 == 0 {
				if got, _ := readParts(b, c.Node(i%3), out); !bytes.Equal(got, want) {
					b.Fatalf("job %d: output %q, want %q", i, got, want)
				}
			}
			if _, err := c.Node(i%3).FS().Remove(out, true); err != nil {
				b.Fatalf("remove %s: %v", out, err)
			}
			if step := max(1, jobs/20); i%step == step-1 {
				fi, _ := os.Stat(metaDB)
				live, bytes := 0, 0
				kinds := map[string]int{}
				for _, r := range c.Node(0).Records().Scan("") {
					live++
					bytes += len(r.Key) + len(r.Value)
					kind, _, _ := strings.Cut(r.Key, "/")
					kinds[kind]++
				}
				report(b, "after %5d jobs: node1 meta.db %7d KiB; %5d live records, %8d bytes; by kind %v; idle anti-entropy round %d bytes",
					i+1, fi.Size()>>10, live, bytes, kinds, idleRound(b, c.Node(0), c.Node(1)))
			}
			b.StartTimer()
		}
		first, last := median(times[:window]), median(times[len(times)-window:])
		perJob := func(from, to int) float64 { return float64(fsyncs[to-1]-fsyncs[from]) / float64(to-1-from) }
		report(b, "%d jobs: median end-to-end of the first %d %v, of the last %d %v: ratio %.2f; metadata fsyncs per job (3 nodes) %.1f first, %.1f last",
			jobs, window, first.Round(time.Millisecond), window, last.Round(time.Millisecond), float64(last)/float64(first),
			perJob(0, window), perJob(len(times)-window, len(times)))
		b.ReportMetric(float64(last)/float64(first), "last/first")
		// Every output was removed: once the last removal has spread, no
		// file but the input is left (a job's late writer used to bring
		// some back).
		clustertest.Eventually(b, 30*time.Second, func() error {
			var left []string
			for _, f := range c.Node(0).FS().Files() {
				if f.Path != "/soak/in.txt" {
					left = append(left, f.Path)
				}
			}
			if len(left) > 0 {
				return fmt.Errorf("%d files left after their directories were removed, e.g. %q", len(left), left[:min(5, len(left))])
			}
			return nil
		})
	}
	b.StopTimer()
	t0 := time.Now()
	nd := c.Restart(3)
	c.WaitAlive(4, 60*time.Second)
	joined := time.Since(t0)
	clustertest.Eventually(b, 120*time.Second, func() error {
		want, got := len(c.Node(0).Records().Scan("job/")), len(nd.Records().Scan("job/"))
		if got != want {
			return fmt.Errorf("the new node holds %d of %d job records", got, want)
		}
		return nil
	})
	report(b, "a new node joined in %v and held every job record %v after it started", joined.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	// The new node answers for the history.
	if l := nd.Scheduler().List(); len(l) == 0 || !strings.HasPrefix(l[0].ID, "job-") {
		b.Fatalf("the new node lists %d jobs", len(l))
	}
}

// idleRound waits until two nodes hold the same records and returns the
// bytes one anti-entropy round between their stores moves (both ways), run
// over a pipe with the protocol's code.
func idleRound(tb testing.TB, a, b *peer.Node) int64 {
	tb.Helper()
	var moved int64
	clustertest.Eventually(tb, 30*time.Second, func() error {
		if a.Records().Root() != b.Records().Root() {
			return errors.New("the two nodes' records differ")
		}
		p, q := net.Pipe()
		defer p.Close()
		defer q.Close()
		served := make(chan gossip.SyncResult, 1)
		go func() {
			res, _ := b.Records().SyncServe(q, time.Now())
			served <- res
		}()
		res, err := a.Records().SyncInitiate(p, time.Now())
		srv := <-served
		if err != nil {
			return err
		}
		if !res.Equal {
			return fmt.Errorf("a round moved records (%d buckets differed)", res.Buckets)
		}
		moved = res.BytesSent + srv.BytesSent
		return nil
	})
	return moved
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// report prints a benchmark's figures in full (the testing package cuts a
// benchmark's log after a few lines).
func report(b *testing.B, format string, args ...any) {
	fmt.Printf("%s: %s\n", b.Name(), fmt.Sprintf(format, args...))
}
