package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

// stuck counts the attempts a node's stuck job code entered and how many
// of them were stopped.
type stuck struct {
	entered, aborted atomic.Int64
}

// stuckRegistry adds "stuckcount": wordcount, except that where hang is
// set its mapper and reducer block on their first record until they are
// aborted, as the tasks of a node that has become very slow; and
// "stuckmap", a map-only job with those hangs whose output is its input's
// lines (distinct's mapper: a map-only wordcount's output would depend on
// the splits, as its mapper counts each split's words).
func stuckRegistry(t *testing.T, hang *stuck) *job.Registry {
	reg := job.NewRegistry()
	builtin.Register(reg)
	wc, _ := reg.Lookup("wordcount")
	lines, _ := reg.Lookup("distinct")
	build := func(mapOnly bool) func(p map[string]string) (*job.Job, error) {
		return func(p map[string]string) (*job.Job, error) {
			spec := wc
			if mapOnly {
				spec = lines
			}
			j, err := spec.Build(p)
			if err != nil {
				return nil, err
			}
			if mapOnly {
				j.MapOnly, j.NewReducer, j.NewCombiner = true, nil, nil
			}
			return hangIn(j, hang), nil
		}
	}
	for name, mapOnly := range map[string]bool{"stuckcount": false, "stuckmap": true} {
		if err := reg.Register(job.Spec{Name: name, Usage: "test", Build: build(mapOnly)}); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

// hangIn makes j's tasks hang where hang is set.
func hangIn(j *job.Job, hang *stuck) *job.Job {
	if hang == nil {
		return j
	}
	newMapper, newReducer := j.NewMapper, j.NewReducer
	j.NewMapper = func(info job.TaskInfo) (job.Mapper, error) {
		m, err := newMapper(info)
		if err != nil {
			return nil, err
		}
		h := &hung{s: hang, stop: make(chan struct{})}
		return &hungMapper{hung: h, inner: m}, nil
	}
	if newReducer != nil {
		j.NewReducer = func(info job.TaskInfo) (job.Reducer, error) {
			r, err := newReducer(info)
			if err != nil {
				return nil, err
			}
			h := &hung{s: hang, stop: make(chan struct{})}
			return &hungReducer{hung: h, inner: r}, nil
		}
	}
	return j
}

type hung struct {
	s    *stuck
	once atomic.Bool
	stop chan struct{}
}

// wait blocks the first call until Abort.
func (h *hung) wait() error {
	if h.once.Swap(true) {
		return nil
	}
	h.s.entered.Add(1)
	<-h.stop
	return errors.New("aborted")
}

func (h *hung) Abort() {
	h.s.aborted.Add(1)
	close(h.stop)
}

type hungMapper struct {
	*hung
	inner job.Mapper
}

func (m *hungMapper) Map(k, v []byte, out job.Emitter) error {
	if err := m.wait(); err != nil {
		return err
	}
	return m.inner.Map(k, v, out)
}

// Close flushes the inner mapper's table (wordcount combines in its
// mapper).
func (m *hungMapper) Close(out job.Emitter) error {
	if c, ok := m.inner.(job.Closer); ok {
		return c.Close(out)
	}
	return nil
}

type hungReducer struct {
	*hung
	inner job.Reducer
}

func (r *hungReducer) Reduce(k []byte, vs job.Values, out job.Emitter) error {
	if err := r.wait(); err != nil {
		return err
	}
	return r.inner.Reduce(k, vs, out)
}

// TestSpeculationOutrunsAStuckNode: on 4 nodes, every map and reduce
// attempt on node1 hangs until it is stopped. Only backup attempts on other
// nodes can finish the job: it succeeds, its output and counters equal the
// sequential wordcount's (each task counted once), backups were launched
// and node1's attempts killed and gone.
func TestSpeculationOutrunsAStuckNode(t *testing.T) {
	hang := &stuck{}
	healthy := stuckRegistry(t, nil)
	slow := stuckRegistry(t, hang)
	c := clustertest.Start(t, 4, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		cfg.Registry = healthy
		if i == 0 {
			cfg.Registry = slow
		}
	}})
	data := corpus(11, 1200<<10)
	put(t, c.Node(1), "/in", data, blockstore.MinBlockSize)
	const reducers = 8
	rec, err := c.Node(1).Submit(context.Background(), scheduler.SubmitRequest{Name: "stuckcount", Inputs: []string{"/in"}, Output: "/out", Reducers: reducers})
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, c.Node(2), rec.ID, 120*time.Second)
	if st.State != scheduler.StateSucceeded {
		t.Fatalf("job %s: %s", st.State, st.Error)
	}
	clustertest.Eventually(t, 10*time.Second, func() error {
		if es, _ := c.Node(3).FS().List("/out"); len(es) != reducers+1 {
			return fmt.Errorf("%d files in /out", len(es))
		}
		return nil
	})
	got, _ := readParts(t, c.Node(3), "/out")
	if want := sequential(t, "wordcount", nil, map[string][]byte{"/in": data}, []string{"/in"}, reducers); !bytes.Equal(got, want) {
		t.Fatalf("output (%d bytes) differs from the sequential run (%d bytes)", len(got), len(want))
	}
	cs := st.Counters
	seq := sequentialCounters(t, data, reducers)
	// Not MAP_OUTPUT_RECORDS: wordcount's mapper emits one pair per
	// distinct word of its split, so that count depends on the splits.
	for _, name := range []string{job.MAP_INPUT_RECORDS, job.REDUCE_INPUT_GROUPS, job.REDUCE_OUTPUT_RECORDS} {
		if cs[name] != seq[name] {
			t.Errorf("%s = %d, the sequential run's %d", name, cs[name], seq[name])
		}
	}
	t.Logf("node1 hung in %d attempts; counters: speculative maps %d reduces %d, killed maps %d reduces %d, launched maps %d (%d splits) reduces %d",
		hang.entered.Load(), cs[job.NUM_SPECULATIVE_MAPS], cs[job.NUM_SPECULATIVE_REDUCES], cs[job.NUM_KILLED_MAPS], cs[job.NUM_KILLED_REDUCES],
		cs[job.TOTAL_LAUNCHED_MAPS], st.Maps, cs[job.TOTAL_LAUNCHED_REDUCES])
	if hang.entered.Load() == 0 || cs[job.NUM_SPECULATIVE_MAPS] == 0 || cs[job.NUM_KILLED_MAPS] == 0 {
		t.Fatal("node1 ran no attempt that speculation had to outrun")
	}
	if cs[job.TOTAL_LAUNCHED_MAPS] < int64(st.Maps)+cs[job.NUM_KILLED_MAPS] || cs[job.TOTAL_LAUNCHED_REDUCES] < reducers+cs[job.NUM_KILLED_REDUCES] {
		t.Fatalf("launched attempts do not include the killed ones")
	}
	// Every hung attempt was stopped.
	clustertest.Eventually(t, 10*time.Second, func() error {
		if e, a := hang.entered.Load(), hang.aborted.Load(); a < e {
			return fmt.Errorf("%d of %d hung attempts on node1 still run", e-a, e)
		}
		return nil
	})
}

// sequentialCounters runs wordcount over data in one process.
func sequentialCounters(t *testing.T, data []byte, reducers int) job.Counters {
	t.Helper()
	reg := job.NewRegistry()
	builtin.Register(reg)
	j, err := reg.Resolve("wordcount", nil)
	if err != nil {
		t.Fatal(err)
	}
	in := []job.Input{{Path: "/in", Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}}
	c, err := job.RunSequential(context.Background(), j, "seq", nil, in, reducers, func(string) (io.WriteCloser, error) { return nopWriteCloser{&bytes.Buffer{}}, nil })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSpeculationMapOnly: a map-only job whose map attempts hang on node1.
// The backups write the parts; node1's attempts, killed, write none; the
// output equals the same job run sequentially, with one part per split and
// no conflict copy.
func TestSpeculationMapOnly(t *testing.T) {
	hang := &stuck{}
	healthy := stuckRegistry(t, nil)
	slow := stuckRegistry(t, hang)
	c := clustertest.Start(t, 4, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		cfg.Registry = healthy
		if i == 0 {
			cfg.Registry = slow
		}
	}})
	data := corpus(12, 900<<10)
	put(t, c.Node(1), "/in", data, blockstore.MinBlockSize)
	rec, err := c.Node(1).Submit(context.Background(), scheduler.SubmitRequest{Name: "stuckmap", Inputs: []string{"/in"}, Output: "/out"})
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, c.Node(2), rec.ID, 120*time.Second)
	if st.State != scheduler.StateSucceeded {
		t.Fatalf("job %s: %s", st.State, st.Error)
	}
	clustertest.Eventually(t, 10*time.Second, func() error {
		if es, _ := c.Node(3).FS().List("/out"); len(es) != st.Maps+1 {
			return fmt.Errorf("%d files in /out, want %d parts and _SUCCESS", len(es), st.Maps)
		}
		return nil
	})
	got, _ := readParts(t, c.Node(3), "/out")
	j, err := healthy.Resolve("stuckmap", nil)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	in := []job.Input{{Path: "/in", Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }}}
	parts := map[string]*bytes.Buffer{}
	if _, err := job.RunSequential(context.Background(), j, "seq", nil, in, 0, func(name string) (io.WriteCloser, error) {
		parts[name] = &bytes.Buffer{}
		return nopWriteCloser{parts[name]}, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(parts)) {
		want.Write(parts[name].Bytes())
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("output (%d bytes) differs from the sequential run (%d bytes)", len(got), want.Len())
	}
	if cs := st.Counters; hang.entered.Load() == 0 || cs[job.NUM_SPECULATIVE_MAPS] == 0 {
		t.Fatalf("node1 hung in %d attempts, %d backups: nothing for speculation to outrun", hang.entered.Load(), cs[job.NUM_SPECULATIVE_MAPS])
	}
	if cs := c.Node(0).FS().Conflicts(); len(cs) > 0 {
		t.Fatalf("conflict copies: %v", cs)
	}
}
