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
	"sync"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/scheduler"
	"shoal.dev/shoal/worker"
)

// The test binary is also a shipped program: started by an agent's worker
// pool (worker.EnvVar set), it serves shippedRegistry instead of testing.
func TestMain(m *testing.M) {
	if os.Getenv(worker.EnvVar) != "" {
		os.Exit(worker.Serve(shippedRegistry()))
	}
	os.Exit(m.Run())
}

// shippedRegistry is the built-in jobs and "hold": a map-only job that
// passes its lines through, first reading the named pipe its parameter
// gate names, if any, so that it runs until the test writes to it.
func shippedRegistry() *job.Registry {
	reg := job.NewRegistry()
	builtin.Register(reg)
	err := reg.Register(job.Spec{
		Name:   "hold",
		Params: []job.Param{{Name: "gate", Default: ""}},
		Build: func(p map[string]string) (*job.Job, error) {
			gate := p["gate"]
			return &job.Job{MapOnly: true, NewMapper: func(job.TaskInfo) (job.Mapper, error) {
				var once sync.Once
				return job.MapperFunc(func(_, line []byte, out job.Emitter) error {
					var err error
					if gate != "" {
						once.Do(func() { _, err = os.ReadFile(gate) })
					}
					if err != nil {
						return err
					}
					return out.Emit(line, nil)
				}), nil
			}}, nil
		},
	})
	if err == nil {
		err = reg.Register(gatedCount())
	}
	if err != nil {
		panic(err)
	}
	return reg
}

// gatedCount is wordcount with a Prepare that reads the named pipe its
// parameter gate names, so that a submission waits in it until the test
// writes to the pipe; the tasks are built without the gate.
func gatedCount() job.Spec {
	base := job.NewRegistry()
	builtin.Register(base)
	return job.Spec{
		Name:   "gatedcount",
		Params: []job.Param{{Name: "gate", Default: ""}},
		Build: func(p map[string]string) (*job.Job, error) {
			j, err := base.Resolve("wordcount", nil)
			if err != nil {
				return nil, err
			}
			gate := p["gate"]
			j.Prepare = func(context.Context, job.Sampler, int) (map[string]string, error) {
				if gate != "" {
					if _, err := os.ReadFile(gate); err != nil {
						return nil, err
					}
				}
				return map[string]string{"gate": ""}, nil
			}
			return j, nil
		},
	}
}

// TestShippedProgramsCollected: the program of a finished job whose
// history is gone is deleted from /.shoal/bin and from every node's cache
// (DATA_DIR/bin), while the program of a running job stays in both; both
// jobs' outputs match the same jobs run sequentially.
func TestShippedProgramsCollected(t *testing.T) {
	var mu sync.Mutex
	var dataDirs []string
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(_ int, cfg *peer.Config) {
		// A grace that usually covers a put and its submission (a
		// submission fetches the program and starts it, seconds under
		// -race; submit stores it again if not), and one ended job
		// remembered, so a later job pushes the first out of the history.
		cfg.BinaryGrace = 10 * time.Second
		cfg.JobHistory = 1
		mu.Lock()
		dataDirs = append(dataDirs, cfg.DataDir)
		mu.Unlock()
	}})
	progA := selfProgram(t)
	// Another build: the same program with bytes after its end, which the
	// loader ignores.
	progB := append(slices.Clone(progA), "\nanother build\n"...)
	sumA, sumB := sum(progA), sum(progB)
	n := c.Node(0)
	input := corpus(7, 200<<10)
	put(t, n, "/in/a.txt", input, blockstore.MinBlockSize)
	small := []byte("one\ntwo\nthree\n")
	put(t, n, "/in/small.txt", small, blockstore.MinBlockSize) // one split
	gate := filepath.Join(t.TempDir(), "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}

	// submit stores a program and submits its job, as job run does: a
	// submission that a slow machine made later than the grace period
	// after the store finds the program deleted (ErrNoProgram, 410) and
	// stores it again.
	submit := func(at *peer.Node, data []byte, req scheduler.SubmitRequest) scheduler.JobRecord {
		t.Helper()
		for try := 0; ; try++ {
			_, err := n.FS().Create(context.Background(), scheduler.BinaryPath(req.Binary), bytes.NewReader(data), blockstore.CreateOptions{BlockSize: 64 << 20, Replication: 1})
			if err != nil && !errors.Is(err, blockstore.ErrExists) {
				t.Fatal(err)
			}
			rec, err := at.Submit(t.Context(), req)
			if errors.Is(err, scheduler.ErrNoProgram) && try < 3 {
				t.Logf("the grace period passed between the store and the submission: %v", err)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			return rec
		}
	}
	// B: a shipped job that runs until the gate opens.
	b := submit(c.Node(1), progB, scheduler.SubmitRequest{Name: "hold", Params: map[string]string{"gate": gate}, Inputs: []string{"/in/small.txt"}, Output: "/outB", Binary: sumB, NoSpeculativeMaps: true})
	// A: a shipped wordcount that runs to its end.
	a := submit(n, progA, scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/in/a.txt"}, Output: "/outA", Reducers: 2, Binary: sumA})
	if st := waitJob(t, n, a.ID, 60*time.Second); st.State != scheduler.StateSucceeded {
		t.Fatalf("job A: %s %s", st.State, st.Error)
	}
	gotA, _ := readParts(t, n, "/outA")
	if want := sequential(t, "wordcount", nil, map[string][]byte{"/in/a.txt": input}, []string{"/in/a.txt"}, 2); !bytes.Equal(gotA, want) {
		t.Fatalf("job A's output (%d bytes) differs from the sequential run's (%d bytes)", len(gotA), len(want))
	}
	// C, a built-in job, ends after A: with one ended job remembered, A's
	// history goes.
	cj, err := n.Submit(t.Context(), scheduler.SubmitRequest{Name: "wordcount", Inputs: []string{"/in/small.txt"}, Output: "/outC"})
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, n, cj.ID, 60*time.Second)

	cached := func(dir, s string) bool {
		_, err := os.Stat(filepath.Join(dir, "bin", s))
		return err == nil
	}
	clustertest.Eventually(t, 40*time.Second, func() error {
		for i := 0; i < c.Len(); i++ {
			if _, err := c.Node(i).FS().Stat(scheduler.BinaryPath(sumA)); !errors.Is(err, blockstore.ErrNoFile) {
				return fmt.Errorf("node %d still lists A's program (%v)", i, err)
			}
		}
		for i, d := range dataDirs {
			if cached(d, sumA) {
				return fmt.Errorf("node %d still caches A's program", i)
			}
		}
		return nil
	})
	// B still runs: its program is stored, and cached where its task runs.
	if st, err := n.Scheduler().Status(b.ID); err != nil || st.State != scheduler.StateRunning {
		t.Fatalf("job B: %+v %v, want running", st, err)
	}
	for i := 0; i < c.Len(); i++ {
		c.Node(i).SyncFiles(context.Background(), scheduler.BinaryPath(sumB))
		if _, err := c.Node(i).FS().Stat(scheduler.BinaryPath(sumB)); err != nil {
			t.Errorf("node %d: the running job's program: %v", i, err)
		}
	}
	holders := 0
	for _, d := range dataDirs {
		if cached(d, sumB) {
			holders++
		}
	}
	if holders == 0 {
		t.Error("no node caches the running job's program")
	}
	// Open the gate: B ends with the output of the sequential run.
	g, err := os.OpenFile(gate, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	if st := waitJob(t, n, b.ID, 60*time.Second); st.State != scheduler.StateSucceeded {
		t.Fatalf("job B: %s %s", st.State, st.Error)
	}
	gotB, _ := readParts(t, n, "/outB")
	if want := sequentialIn(t, shippedRegistry(), "hold", small); !bytes.Equal(gotB, want) {
		t.Fatalf("job B's output %q differs from the sequential run's %q", gotB, want)
	}
}

// sequentialIn runs a map-only job of reg over one input in one process.
func sequentialIn(t *testing.T, reg *job.Registry, name string, input []byte) []byte {
	t.Helper()
	j, err := reg.Resolve(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ins := []job.Input{{Path: "/in", Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(input)), nil }}}
	if _, err := job.RunSequential(context.Background(), j, "seq", nil, ins, 0, func(string) (io.WriteCloser, error) { return nopWriteCloser{&out}, nil }); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestProgramDeletedDuringSubmission: the clean-up deletes a job's program
// after the submitting node checked it and before the job record exists
// (here the test deletes it while the job's Prepare waits); the submitting
// node stores it again from its cache, so the nodes that fetch it for
// their tasks find it, and the job's output matches wordcount run
// sequentially.
// selfProgram is this test binary's bytes: the program the shipped-job
// tests ship (TestMain makes it a worker).
func selfProgram(t *testing.T) []byte {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prog, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

// storeProgram stores prog where a shipped job's program goes, through
// n, and returns that path.
func storeProgram(t *testing.T, n *peer.Node, prog []byte) string {
	t.Helper()
	p := scheduler.BinaryPath(sum(prog))
	if _, err := n.FS().Create(context.Background(), p, bytes.NewReader(prog), blockstore.CreateOptions{BlockSize: 64 << 20, Replication: 1}); err != nil {
		t.Fatal(err)
	}
	return p
}

// gatedResult is what a gatedcount submission returned.
type gatedResult struct {
	rec scheduler.JobRecord
	err error
}

// submitGated puts input as /in/a.txt and submits a gatedcount job of it
// to n, shipped as prog, into /out with 3 reducers. It returns once the
// job's Prepare, after the program's check, waits on its gate: g is the
// gate's writing end (closing it lets the Prepare go on) and done brings
// what Submit returned.
func submitGated(t *testing.T, n *peer.Node, input, prog []byte) (g *os.File, done <-chan gatedResult) {
	t.Helper()
	put(t, n, "/in/a.txt", input, blockstore.MinBlockSize)
	gate := filepath.Join(t.TempDir(), "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	res := make(chan gatedResult, 1)
	go func() {
		rec, err := n.Submit(context.Background(), scheduler.SubmitRequest{Name: "gatedcount", Params: map[string]string{"gate": gate}, Inputs: []string{"/in/a.txt"}, Output: "/out", Reducers: 3, Binary: sum(prog)})
		res <- gatedResult{rec, err}
	}()
	// Opening the pipe for writing returns once the Prepare opened it
	// for reading.
	g, err := os.OpenFile(gate, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return g, res
}

func TestProgramDeletedDuringSubmission(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	n := c.Node(0)
	prog := selfProgram(t)
	p := storeProgram(t, n, prog)
	input := corpus(11, 300<<10)
	g, done := submitGated(t, n, input, prog)
	if _, err := c.Node(1).FS().Remove(p, false); err != nil {
		t.Fatal(err)
	}
	g.Close()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if st := waitJob(t, n, r.rec.ID, 60*time.Second); st.State != scheduler.StateSucceeded {
		t.Fatalf("job: %s %s", st.State, st.Error)
	}
	got, _ := readParts(t, n, "/out")
	if want := sequential(t, "wordcount", nil, map[string][]byte{"/in/a.txt": input}, []string{"/in/a.txt"}, 3); !bytes.Equal(got, want) {
		t.Fatalf("output (%d bytes) differs from the sequential run's (%d bytes)", len(got), len(want))
	}
	if _, err := n.FS().Stat(p); err != nil {
		t.Errorf("the program is not stored again: %v", err)
	}
}

// TestRunningJobsProgramStoredAgain: the program of a running job is
// deleted from the cluster behind the schedulers' backs (as the larger
// side of a partition that did not know the job would, or a clean-up pass
// that read the job records just before the job's arrived); a node that
// caches it (the submitter at least) stores it again within a few
// scheduler passes, and the job ends with the output of the sequential
// run.
func TestRunningJobsProgramStoredAgain(t *testing.T) {
	c := clustertest.Start(t, 3, clustertest.Options{})
	n := c.Node(0)
	prog := selfProgram(t)
	p := storeProgram(t, n, prog)
	small := []byte("one\ntwo\nthree\n")
	put(t, n, "/in/small.txt", small, blockstore.MinBlockSize) // one split
	gate := filepath.Join(t.TempDir(), "gate")
	if err := syscall.Mkfifo(gate, 0o600); err != nil {
		t.Fatal(err)
	}
	rec, err := n.Submit(t.Context(), scheduler.SubmitRequest{Name: "hold", Params: map[string]string{"gate": gate}, Inputs: []string{"/in/small.txt"}, Output: "/out", Binary: sum(prog), NoSpeculativeMaps: true})
	if err != nil {
		t.Fatal(err)
	}
	// Opening the pipe for writing returns once the job's task opened it
	// for reading: the job runs.
	g, err := os.OpenFile(gate, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := c.Node(1).FS().Remove(p, false); err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 15*time.Second, func() error {
		for i := 0; i < c.Len(); i++ {
			c.Node(i).SyncFiles(context.Background(), p)
			if _, err := c.Node(i).FS().Stat(p); err != nil {
				return fmt.Errorf("node %d: the running job's program: %v", i, err)
			}
		}
		return nil
	})
	if st, err := n.Scheduler().Status(rec.ID); err != nil || st.State != scheduler.StateRunning {
		t.Fatalf("job: %+v %v, want running", st, err)
	}
	g.Close()
	if st := waitJob(t, n, rec.ID, 60*time.Second); st.State != scheduler.StateSucceeded {
		t.Fatalf("job: %s %s", st.State, st.Error)
	}
	got, _ := readParts(t, n, "/out")
	if want := sequentialIn(t, shippedRegistry(), "hold", small); !bytes.Equal(got, want) {
		t.Fatalf("output %q differs from the sequential run's %q", got, want)
	}
}

// TestTaskWaitsForProgram: the program of a job is deleted from the
// cluster and from the submitter's cache while the job's Prepare runs, so
// no node can store it again and its tasks find it missing; they wait for
// it instead of spending their attempts, and once it is stored again
// (here by the test) the job ends with the output of the sequential run.
func TestTaskWaitsForProgram(t *testing.T) {
	var mu sync.Mutex
	dataDirs := map[int]string{}
	c := clustertest.Start(t, 3, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		mu.Lock()
		dataDirs[i] = cfg.DataDir
		mu.Unlock()
	}})
	n := c.Node(0)
	prog := selfProgram(t)
	store := func() { storeProgram(t, n, prog) }
	p := storeProgram(t, n, prog)
	input := corpus(13, 300<<10)
	g, done := submitGated(t, n, input, prog)
	if _, err := c.Node(1).FS().Remove(p, false); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	err := os.Remove(filepath.Join(dataDirs[0], "bin", sum(prog)))
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	clustertest.Eventually(t, 20*time.Second, func() error {
		waits := int64(0)
		for i := 0; i < c.Len(); i++ {
			waits += c.Node(i).Scheduler().Stats.ProgramWaits.Load()
		}
		st, err := n.Scheduler().Status(r.rec.ID)
		if err != nil || st.State != scheduler.StateRunning {
			return fmt.Errorf("job: %s %s %v, want running", st.State, st.Error, err)
		}
		if waits == 0 {
			return fmt.Errorf("no task waits for the program yet")
		}
		return nil
	})
	store()
	if st := waitJob(t, n, r.rec.ID, 60*time.Second); st.State != scheduler.StateSucceeded {
		t.Fatalf("job: %s %s", st.State, st.Error)
	}
	got, _ := readParts(t, n, "/out")
	if want := sequential(t, "wordcount", nil, map[string][]byte{"/in/a.txt": input}, []string{"/in/a.txt"}, 3); !bytes.Equal(got, want) {
		t.Fatalf("output (%d bytes) differs from the sequential run's (%d bytes)", len(got), len(want))
	}
}
