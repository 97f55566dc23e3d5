package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
)

// corpus makes n bytes of text with a skewed vocabulary.
func corpus(seed uint64, n int64) []byte {
	var b bytes.Buffer
	if err := builtin.GenerateText(&b, n, seed); err != nil {
		panic(err)
	}
	return b.Bytes()
}

func put(t testing.TB, n *peer.Node, path string, data []byte, blockSize int64) {
	t.Helper()
	if _, err := n.FS().Create(context.Background(), path, bytes.NewReader(data), blockstore.CreateOptions{BlockSize: blockSize}); err != nil {
		t.Fatalf("put %s: %v", path, err)
	}
}

// readParts concatenates a job's output parts in order.
func readParts(t testing.TB, n *peer.Node, dir string) ([]byte, []string) {
	t.Helper()
	// A job's end record is pushed to every member at once; its output
	// files' records spread by gossip, so pull them as the API would.
	n.SyncFiles(context.Background(), dir)
	entries, err := n.FS().List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
		if !strings.HasPrefix(e.Name, "part-") {
			continue
		}
		if _, err := n.FS().WriteTo(context.Background(), *e.File, &out); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes(), names
}

// sequential runs the same job in one process over the same inputs.
func sequential(t testing.TB, name string, params map[string]string, inputs map[string][]byte, order []string, reducers int) []byte {
	t.Helper()
	reg := job.NewRegistry()
	builtin.Register(reg)
	j, err := reg.Resolve(name, params)
	if err != nil {
		t.Fatal(err)
	}
	var ins []job.Input
	for _, p := range order {
		data := inputs[p]
		ins = append(ins, job.Input{Path: p, Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }})
	}
	parts := map[string]*bytes.Buffer{}
	var names []string
	_, err = job.RunSequential(context.Background(), j, "seq", params, ins, reducers, func(name string) (io.WriteCloser, error) {
		b := &bytes.Buffer{}
		parts[name] = b
		names = append(names, name)
		return nopWriteCloser{b}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, n := range slices.Sorted(slices.Values(names)) {
		out.Write(parts[n].Bytes())
	}
	return out.Bytes()
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func waitJob(t testing.TB, n *peer.Node, id string, timeout time.Duration) scheduler.Status {
	t.Helper()
	var st scheduler.Status
	clustertest.Eventually(t, timeout, func() error {
		var err error
		st, err = n.Scheduler().Status(id)
		if err != nil {
			return err
		}
		if st.State == scheduler.StateRunning {
			return fmt.Errorf("job %s running: map %d/%d reduce %d/%d", id, st.MapsDone, st.Maps, st.ReducesDone, st.Reducers)
		}
		return nil
	})
	return st
}

func TestBuiltinJobsMatchSequential(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	inputs := map[string][]byte{
		"/in/a.txt": corpus(1, 600<<10),
		"/in/b.txt": corpus(2, 300<<10),
		"/in/c.txt": []byte("alpha beta\ngamma alpha\n"),
	}
	order := []string{"/in/a.txt", "/in/b.txt", "/in/c.txt"}
	for p, data := range inputs {
		put(t, c.Node(0), p, data, blockstore.MinBlockSize)
	}
	nums := []byte("a\t1\nb\t2\na\t40\nc\t-3\n")
	put(t, c.Node(1), "/nums/n.tsv", nums, blockstore.MinBlockSize)

	cases := []struct {
		name   string
		params map[string]string
		inputs []string
	}{
		{"wordcount", nil, order},
		{"grep", map[string]string{"pattern": "a[a-z]*a"}, order},
		{"invertedindex", nil, order},
		{"distinct", nil, order},
		{"sum", nil, []string{"/nums/n.tsv"}},
	}
	all := map[string][]byte{"/nums/n.tsv": nums}
	for k, v := range inputs {
		all[k] = v
	}
	ctx := context.Background()
	for _, tc := range cases {
		for _, reducers := range []int{1, 3, 7} {
			t.Run(fmt.Sprintf("%s/r=%d", tc.name, reducers), func(t *testing.T) {
				out := fmt.Sprintf("/out/%s-%d", tc.name, reducers)
				submitter := c.Node(reducers % 3)
				start := time.Now()
				rec, err := submitter.Submit(ctx, scheduler.SubmitRequest{
					Name: tc.name, Params: tc.params, Inputs: tc.inputs, Output: out, Reducers: reducers,
				})
				if err != nil {
					t.Fatal(err)
				}
				st := waitJob(t, c.Node((reducers+1)%3), rec.ID, 60*time.Second)
				if st.State != scheduler.StateSucceeded {
					t.Fatalf("job %s: %s", st.State, st.Error)
				}
				// The parts' records reach every node by gossip soon after.
				clustertest.Eventually(t, 10*time.Second, func() error {
					if es, _ := c.Node(2).FS().List(out); len(es) != reducers+1 {
						return fmt.Errorf("%d files in %s", len(es), out)
					}
					return nil
				})
				got, names := readParts(t, c.Node(2), out)
				want := sequential(t, tc.name, tc.params, all, tc.inputs, reducers)
				if !bytes.Equal(got, want) {
					t.Fatalf("distributed output (%d bytes) differs from sequential (%d bytes)", len(got), len(want))
				}
				if len(names) != reducers+1 || names[len(names)-1] != "_SUCCESS" && names[0] != "_SUCCESS" {
					t.Fatalf("output files %v", names)
				}
				// Without backups every split is mapped once, data-locally,
				// and every partition reduced once. A machine under load can
				// make a task look like a straggler: then each backup adds
				// at most one attempt, and each killed attempt one more. A
				// node that looked dead for a moment (its probes missed)
				// has its tasks run elsewhere too: nothing to count then.
				if flaps := memberFailures(c, start); flaps > 0 {
					t.Logf("%d member failures declared during the job: attempts not counted", flaps)
					return
				}
				cs := st.Counters
				specM, specR := cs[job.NUM_SPECULATIVE_MAPS], cs[job.NUM_SPECULATIVE_REDUCES]
				if extra := cs[job.TOTAL_LAUNCHED_MAPS] - int64(st.Maps) - cs[job.NUM_KILLED_MAPS]; extra < 0 || extra > specM || specM == 0 && cs[job.DATA_LOCAL_MAPS] != cs[job.TOTAL_LAUNCHED_MAPS] {
					t.Fatalf("maps: %d launched, %d data-local, %d killed, %d backups, %d splits; %s", cs[job.TOTAL_LAUNCHED_MAPS], cs[job.DATA_LOCAL_MAPS], cs[job.NUM_KILLED_MAPS], specM, st.Maps, rerunTasks(c.Node(0), rec.ID))
				}
				if extra := cs[job.TOTAL_LAUNCHED_REDUCES] - int64(reducers) - cs[job.NUM_KILLED_REDUCES]; extra < 0 || extra > specR {
					t.Fatalf("%d reduces launched (%d killed, %d backups), want %d; %s", cs[job.TOTAL_LAUNCHED_REDUCES], cs[job.NUM_KILLED_REDUCES], specR, reducers, rerunTasks(c.Node(0), rec.ID))
				}
			})
		}
	}
}

// rerunTasks lists the tasks of a job that ran more than once, with each
// attempt's node and result, for a test's failure message.
func rerunTasks(n *peer.Node, id string) string {
	logs := n.TaskLogs(context.Background(), id, "")
	byTask := map[string][]string{}
	var tasks []string
	for _, a := range logs.Attempts {
		if byTask[a.Task] == nil {
			tasks = append(tasks, a.Task)
		}
		byTask[a.Task] = append(byTask[a.Task], fmt.Sprintf("%s %s at %s", a.Node, a.Result, a.Start.Format("15:04:05.000")))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tasks run more than once (of %d attempts listed", len(logs.Attempts))
	if len(logs.Missing) > 0 {
		fmt.Fprintf(&b, ", %v not answering", logs.Missing)
	}
	b.WriteString("):")
	for _, task := range tasks {
		if len(byTask[task]) > 1 {
			fmt.Fprintf(&b, " %s: %s;", task, strings.Join(byTask[task], ", "))
		}
	}
	return b.String()
}

// memberFailures counts the member failures the running nodes declared
// since start.
func memberFailures(c *clustertest.Cluster, start time.Time) int {
	n := 0
	for _, nd := range c.Running() {
		n += nd.MemberFailuresSince(start)
	}
	return n
}

func TestEmptyInputAndBadRequests(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	ctx := context.Background()
	put(t, c.Node(0), "/empty", nil, blockstore.MinBlockSize)
	put(t, c.Node(0), "/text", []byte("x y\n"), blockstore.MinBlockSize)
	s := c.Node(1).Scheduler()
	rec, err := c.Node(1).Submit(ctx, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/empty"}, Output: "/out/empty", Reducers: 3})
	if err != nil {
		t.Fatal(err)
	}
	if st := waitJob(t, c.Node(2), rec.ID, 30*time.Second); st.State != scheduler.StateSucceeded {
		t.Fatalf("empty job %s: %s", st.State, st.Error)
	}
	clustertest.Eventually(t, 10*time.Second, func() error {
		if es, _ := c.Node(0).FS().List("/out/empty"); len(es) != 4 {
			return fmt.Errorf("%d files", len(es))
		}
		return nil
	})
	got, names := readParts(t, c.Node(0), "/out/empty")
	if len(got) != 0 || len(names) != 4 {
		t.Fatalf("empty job wrote %q in %v", got, names)
	}

	bad := map[string]scheduler.SubmitRequest{
		"unknown job":     {Name: "nosuchjob", Inputs: []string{"/text"}, Output: "/o1"},
		"missing input":   {Name: "wordcount", Inputs: []string{"/nope"}, Output: "/o2"},
		"existing output": {Name: "wordcount", Inputs: []string{"/text"}, Output: "/out/empty"},
		"bad parameter":   {Name: "grep", Params: map[string]string{"pattern": "("}, Inputs: []string{"/text"}, Output: "/o3"},
		"unknown param":   {Name: "wordcount", Params: map[string]string{"x": "1"}, Inputs: []string{"/text"}, Output: "/o4"},
		"negative reduce": {Name: "wordcount", Inputs: []string{"/text"}, Output: "/o5", Reducers: -1},
		"no input":        {Name: "wordcount", Output: "/o6"},
		"relative output": {Name: "wordcount", Inputs: []string{"/text"}, Output: "o7"},
	}
	before := len(s.List())
	for name, req := range bad {
		if _, err := c.Node(1).Submit(ctx, req); !errors.Is(err, scheduler.ErrBadRequest) {
			t.Errorf("%s: %v, want ErrBadRequest", name, err)
		}
	}
	if len(s.List()) != before {
		t.Fatal("a bad request wrote a job")
	}
	for _, o := range []string{"/o1", "/o2", "/o3", "/o4", "/o5", "/o6"} {
		if _, err := c.Node(0).FS().List(o); err == nil {
			t.Fatalf("a bad request wrote %s", o)
		}
	}
}

// testRegistry adds to the built-ins a job whose mapper fails its first
// attempt of every task, one that always fails, and one that is slow.
func testRegistry(t *testing.T) *job.Registry {
	reg := job.NewRegistry()
	builtin.Register(reg)
	wrap := func(name string, mapper func(info job.TaskInfo, inner job.Mapper) job.Mapper) {
		wrapWordcount(t, reg, name, mapper)
	}
	wrap("flaky", func(info job.TaskInfo, inner job.Mapper) job.Mapper {
		return job.MapperFunc(func(k, v []byte, out job.Emitter) error {
			if info.Attempt == 0 {
				return errors.New("first attempts always fail")
			}
			return inner.Map(k, v, out)
		})
	})
	wrap("broken", func(info job.TaskInfo, inner job.Mapper) job.Mapper {
		return job.MapperFunc(func(k, v []byte, out job.Emitter) error { panic("user code exploded") })
	})
	wrap("slow", func(info job.TaskInfo, inner job.Mapper) job.Mapper {
		return job.MapperFunc(func(k, v []byte, out job.Emitter) error {
			time.Sleep(time.Millisecond) // a slow user function, not a wait in the test
			return inner.Map(k, v, out)
		})
	})
	return reg
}

// wrapWordcount registers name: wordcount with each map task's mapper
// wrapped by mapper (given the task and wordcount's own mapper), which is
// closed after it, so that wordcount's in-mapper counts are emitted.
func wrapWordcount(t *testing.T, reg *job.Registry, name string, mapper func(info job.TaskInfo, inner job.Mapper) job.Mapper) {
	t.Helper()
	wc, ok := reg.Lookup("wordcount")
	if !ok {
		t.Fatal("no wordcount in the registry")
	}
	err := reg.Register(job.Spec{Name: name, Usage: "test", Build: func(p map[string]string) (*job.Job, error) {
		j, err := wc.Build(p)
		if err != nil {
			return nil, err
		}
		inner := j.NewMapper
		j.NewMapper = func(info job.TaskInfo) (job.Mapper, error) {
			m, err := inner(info)
			if err != nil {
				return nil, err
			}
			return closing{mapper(info, m), m}, nil
		}
		return j, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// closing is a wrapped mapper that closes its inner one (wordcount counts
// in its mapper and emits at Close).
type closing struct {
	job.Mapper
	inner job.Mapper
}

func (c closing) Close(out job.Emitter) error {
	if cl, ok := c.inner.(job.Closer); ok {
		return cl.Close(out)
	}
	return nil
}

func TestRetriesFailuresAndKill(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{Registry: testRegistry(t)})
	ctx := context.Background()
	data := corpus(5, 200<<10)
	put(t, c.Node(0), "/in", data, blockstore.MinBlockSize)

	// Every first attempt fails; the retries succeed with the right output.
	rec, err := c.Node(0).Submit(ctx, scheduler.SubmitRequest{Name: "flaky", Inputs: []string{"/in"}, Output: "/flaky", Reducers: 2})
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, c.Node(1), rec.ID, 60*time.Second)
	if st.State != scheduler.StateSucceeded {
		t.Fatalf("flaky: %s %s", st.State, st.Error)
	}
	if st.Counters[job.NUM_FAILED_MAPS] != int64(st.Maps) {
		t.Fatalf("NUM_FAILED_MAPS %d, want %d", st.Counters[job.NUM_FAILED_MAPS], st.Maps)
	}
	clustertest.Eventually(t, 10*time.Second, func() error {
		if es, _ := c.Node(1).FS().List("/flaky"); len(es) != 3 {
			return fmt.Errorf("%d files", len(es))
		}
		return nil
	})
	got, _ := readParts(t, c.Node(1), "/flaky")
	if want := sequential(t, "wordcount", nil, map[string][]byte{"/in": data}, []string{"/in"}, 2); !bytes.Equal(got, want) {
		t.Fatal("flaky job output differs from the sequential wordcount")
	}

	// Code that always fails fails the job after max attempts, with its error.
	rec, err = c.Node(1).Submit(ctx, scheduler.SubmitRequest{Name: "broken", Inputs: []string{"/in"}, Output: "/broken", MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	st = waitJob(t, c.Node(2), rec.ID, 60*time.Second)
	if st.State != scheduler.StateFailed || !strings.Contains(st.Error, "user code exploded") || !strings.Contains(st.Error, "failed 2 times") {
		t.Fatalf("broken: %s %q", st.State, st.Error)
	}

	// Kill stops every task and removes the intermediate files everywhere.
	rec, err = c.Node(2).Submit(ctx, scheduler.SubmitRequest{Name: "slow", Inputs: []string{"/in"}, Output: "/slow", Reducers: 3})
	if err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		if s, _ := c.Node(0).Scheduler().Status(rec.ID); s.MapsDone == 0 {
			return errors.New("no map done yet")
		}
		return nil
	})
	if st, err := c.Node(0).Scheduler().Kill(rec.ID); err != nil || st.State != scheduler.StateKilled {
		t.Fatalf("kill: %v %v", st.State, err)
	}
	clustertest.Eventually(t, 30*time.Second, func() error {
		for i := 0; i < 3; i++ {
			dir := filepath.Join(c.Config(i).DataDir, "shuffle", rec.ID)
			if _, err := os.Stat(dir); err == nil {
				return fmt.Errorf("%s still has %s", c.Node(i).Name(), dir)
			}
		}
		return nil
	})
	// Finished jobs leave no intermediate files either.
	for i := 0; i < 3; i++ {
		entries, _ := os.ReadDir(filepath.Join(c.Config(i).DataDir, "shuffle"))
		if len(entries) != 0 {
			t.Fatalf("%s keeps intermediate files: %v", c.Node(i).Name(), entries)
		}
	}
}

// TestStreamingNeedsSecret: an open cluster refuses streaming jobs, which
// run commands on every node.
func TestStreamingNeedsSecret(t *testing.T) {
	c := clustertest.Start(t, 1, clustertest.Options{NoSecret: true})
	put(t, c.Node(0), "/in", []byte("x\n"), blockstore.MinBlockSize)
	_, err := c.Node(0).Submit(context.Background(), scheduler.SubmitRequest{
		Name: "streaming", Params: map[string]string{"mapper": "cat", "reducer": "cat"}, Inputs: []string{"/in"}, Output: "/out",
	})
	if !errors.Is(err, scheduler.ErrBadRequest) || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("streaming on an open cluster: %v", err)
	}
}
