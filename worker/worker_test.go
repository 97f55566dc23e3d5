package worker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/job"
	"shoal.dev/shoal/shuffle"
)

// The test binary is its own worker program: with EnvVar set, TestMain
// serves testRegistry (or misbehaves as testMode says) instead of testing.
const testMode = "SHOAL_WORKER_TEST_MODE"

func TestMain(m *testing.M) {
	if os.Getenv(EnvVar) != "" {
		switch os.Getenv(testMode) {
		case "exit-at-start":
			fmt.Fprintln(os.Stderr, "worker: cannot start: no configuration")
			os.Exit(4)
		case "old-proto":
			out := bufio.NewWriter(os.NewFile(5, "out"))
			_ = writeMsg(out, frameHello, hello{Proto: Proto + 1, GOOS: runtime.GOOS, GOARCH: runtime.GOARCH})
			os.Exit(0)
		case "minor-0":
			serveMinor = 0
		case "garbage-hello":
			os.NewFile(5, "out").Write([]byte("hello, I am not a worker\n"))
			os.Exit(0)
		}
		os.Exit(Serve(testRegistry()))
	}
	os.Exit(m.Run())
}

// wordSplit emits (word, "1") for each word; its reducer sums. Word
// "crash" exits the worker, "garbage" writes garbage on the worker's
// output pipe, "hang" blocks forever, "fail" returns an error, and
// "permanent" a permanent one.
func wordSplit() job.Spec {
	return job.Spec{
		Name:   "words",
		Params: []job.Param{{Name: "suffix", Default: ""}},
		Build: func(p map[string]string) (*job.Job, error) {
			suffix := p["suffix"]
			return &job.Job{
				NewMapper: func(job.TaskInfo) (job.Mapper, error) {
					return job.MapperFunc(func(_, line []byte, out job.Emitter) error {
						for _, w := range bytes.Fields(line) {
							switch string(w) {
							case "crash":
								fmt.Fprintln(os.Stderr, "about to crash on purpose")
								os.Exit(7)
							case "garbage":
								os.NewFile(5, "out").Write([]byte("\xffgarbage frame"))
								time.Sleep(time.Hour)
							case "hang":
								select {}
							case "fail":
								return errors.New("the word fail")
							case "permanent":
								return job.Permanent(errors.New("the word permanent"))
							}
							if err := out.Emit(append(w, suffix...), []byte("1")); err != nil {
								return err
							}
						}
						return nil
					}), nil
				},
				NewCombiner: sumReducer,
				NewReducer:  sumReducer,
			}, nil
		},
	}
}

func sumReducer(job.TaskInfo) (job.Reducer, error) {
	return job.ReducerFunc(func(key []byte, vs job.Values, out job.Emitter) error {
		n := 0
		for v, ok := vs.Next(); ok; v, ok = vs.Next() {
			var k int
			fmt.Sscan(string(v), &k)
			n += k
		}
		return out.Emit(key, []byte(fmt.Sprint(n)))
	}), nil
}

// countingMapper counts its records in a counter of its own and reports
// a status line; it passes records through.
type countingMapper struct{ n int64 }

func (m *countingMapper) Map(k, v []byte, out job.Emitter) error {
	m.n++
	if string(v) == "slow" {
		time.Sleep(3 * statusEvery) // long enough for a status frame
	}
	return out.Emit(v, nil)
}

func (m *countingMapper) Counters() job.Counters { return job.Counters{"LINES_SEEN": m.n} }

func (m *countingMapper) Status() string { return "busy" }

func testRegistry() *job.Registry {
	r := job.NewRegistry()
	err := r.Register(wordSplit())
	if err == nil {
		err = r.Register(job.Spec{Name: "counting", Build: func(map[string]string) (*job.Job, error) {
			return &job.Job{MapOnly: true, NewMapper: func(job.TaskInfo) (job.Mapper, error) { return &countingMapper{}, nil }}, nil
		}})
	}
	if err == nil {
		err = r.Register(cutsSpec())
	}
	if err != nil {
		panic(err)
	}
	return r
}

// cutsSpec is a job whose Prepare samples its input and returns, as
// parameter cuts, the sorted sample keys joined by commas (and the
// reducer count it was given); with fail=1 its Prepare fails.
func cutsSpec() job.Spec {
	return job.Spec{
		Name:   "cuts",
		Params: []job.Param{{Name: "cuts"}, {Name: "reducers"}, {Name: "fail", Default: "0"}},
		Build: func(p map[string]string) (*job.Job, error) {
			j := &job.Job{MapOnly: true, NewMapper: func(job.TaskInfo) (job.Mapper, error) {
				return job.MapperFunc(func(_, v []byte, out job.Emitter) error { return out.Emit(v, []byte(p["cuts"])) }), nil
			}}
			j.Prepare = func(ctx context.Context, s job.Sampler, reducers int) (map[string]string, error) {
				if p["fail"] == "1" {
					return nil, errors.New("no good sample")
				}
				keys, err := s.Sample(ctx, 3, 2)
				if err != nil {
					return nil, err
				}
				var ks []string
				for _, k := range keys {
					ks = append(ks, string(k))
				}
				slices.Sort(ks)
				return map[string]string{"cuts": strings.Join(ks, ","), "reducers": fmt.Sprint(reducers)}, nil
			}
			return j, nil
		},
	}
}

// TestPrepareInWorker: a shipped job's Prepare runs in a worker, its
// samples answered by the agent's Sampler, and gives the parameters the
// same Prepare gives in process; a failing Prepare or sample is the
// submission's error, and a worker of minor version 0 is refused.
func TestPrepareInWorker(t *testing.T) {
	ctx := context.Background()
	var calls []string
	sampler := job.SamplerFunc(func(_ context.Context, splits, per int) ([][]byte, error) {
		calls = append(calls, fmt.Sprintf("%d/%d", splits, per))
		return [][]byte{[]byte("q"), []byte("b"), {}, []byte("m\x00n")}, nil
	})
	p := newPool(t, "")
	info, err := p.Prepare(ctx, testBinary(t), "cuts", nil, 0, sampler)
	if err != nil {
		t.Fatal(err)
	}
	_, want, err := testRegistry().ResolvePrepared(ctx, "cuts", nil, sampler, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(info.Params) != fmt.Sprint(want) || info.Params["cuts"] != ",b,m\x00n,q" || !info.MapOnly || !info.Prepare {
		t.Errorf("prepared %+v, want params %v", info, want)
	}
	if fmt.Sprint(calls) != "[3/2 3/2]" {
		t.Errorf("sampler calls %v", calls)
	}

	if _, err := p.Prepare(ctx, testBinary(t), "cuts", map[string]string{"fail": "1"}, 2, sampler); err == nil || err.Error() != "cuts: prepare: no good sample" {
		t.Errorf("failing prepare: %v", err)
	}
	bad := job.SamplerFunc(func(context.Context, int, int) ([][]byte, error) { return nil, errors.New("block 7ad7 is lost") })
	if _, err := p.Prepare(ctx, testBinary(t), "cuts", nil, 2, bad); err == nil || !strings.Contains(err.Error(), "sample the input: block 7ad7 is lost") {
		t.Errorf("failing sample: %v", err)
	}
	if _, err := p.Prepare(ctx, testBinary(t), "cuts", map[string]string{"nope": "1"}, 2, sampler); !errors.Is(err, ErrBadJob) {
		t.Errorf("bad parameter: %v", err)
	}
	old := newPool(t, "minor-0")
	if _, err := old.Prepare(ctx, testBinary(t), "cuts", nil, 2, sampler); !errors.Is(err, ErrBadJob) || !strings.Contains(err.Error(), "cannot run one (worker protocol 1.0, this agent 1.1): rebuild it") {
		t.Errorf("older worker: %v", err)
	}
	if _, err := old.Describe(ctx, testBinary(t), "cuts", nil); err != nil {
		t.Errorf("an older worker still describes: %v", err)
	}
}

func testBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// newPool returns a pool whose workers misbehave as mode says ("" for
// none), closed at the end of the test.
func newPool(t *testing.T, mode string) *Pool {
	t.Helper()
	t.Setenv(testMode, mode)
	p := NewPool(PoolConfig{})
	t.Cleanup(p.Close)
	return p
}

// textInput is a RecordSource of lines, keyed as TextInput keys them.
func textInput(lines ...string) job.RecordSource {
	return func(fn func(k, v []byte) error) error {
		off := 0
		for _, l := range lines {
			if err := fn([]byte(fmt.Sprint(off)), []byte(l)); err != nil {
				return err
			}
			off += len(l) + 1
		}
		return nil
	}
}

// collect is an emitter that keeps "key\tvalue" lines.
type collect struct{ lines []string }

func (c *collect) Emit(k, v []byte) error {
	c.lines = append(c.lines, string(k)+"\t"+string(v))
	return nil
}

func shippedJob(t *testing.T, p *Pool, info Info, shuffleDir string) *job.Job {
	t.Helper()
	bin := testBinary(t)
	return p.Job(JobConfig{
		Info: info, Binary: func(context.Context) (string, error) { return bin, nil },
		Reducers: 2, ShuffleDir: shuffleDir, SortBuffer: shuffle.MinBufferBytes,
	})
}

func describe(t *testing.T, p *Pool, params map[string]string) Info {
	t.Helper()
	info, err := p.Describe(context.Background(), testBinary(t), "words", params)
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	return info
}

// TestShippedTasksMatchInProcess runs map tasks (to the shuffle) and a
// reduce task of a shipped job through the task driver, as the scheduler
// does, and compares every output byte and counter with the same tasks
// run in this process; the tasks share one worker.
func TestShippedTasksMatchInProcess(t *testing.T) {
	ctx := context.Background()
	p := newPool(t, "")
	info := describe(t, p, map[string]string{"suffix": "!"})
	if info.Params["suffix"] != "!" || info.MapOnly || info.Input != job.TextInput {
		t.Fatalf("info %+v", info)
	}
	started := p.Started()
	dirShipped, dirLocal := t.TempDir(), t.TempDir()
	shipped := shippedJob(t, p, info, dirShipped)
	local, err := testRegistry().Resolve("words", info.Params)
	if err != nil {
		t.Fatal(err)
	}
	inputs := [][]string{{"a b c", "b c", "c"}, {"x y", strings.Repeat("long ", 20000)}}
	for i, in := range inputs {
		ti := job.TaskInfo{JobID: "j1", TaskID: job.MapTaskID(i), Params: info.Params}
		c1, err := job.RunMapTask(ctx, job.Task{Job: shipped, Info: ti}, textInput(in...), job.EmitterFunc(func(k, v []byte) error {
			return errors.New("emitted on the agent")
		}))
		if err != nil {
			t.Fatalf("shipped map %d: %v", i, err)
		}
		task := job.Task{Job: local, Info: ti}
		mw, emit, err := NewMapWriter(task, shuffle.MapConfig{Dir: dirLocal, Name: ti.TaskID, Partitions: 2, BufferBytes: shuffle.MinBufferBytes})
		if err != nil {
			t.Fatal(err)
		}
		c2, err := job.RunMapTask(ctx, task, textInput(in...), job.EmitterFunc(emit))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mw.Close(); err != nil {
			t.Fatal(err)
		}
		mc := mw.Counters()
		c2.Add(job.COMBINE_INPUT_RECORDS, mc.CombineInputRecords)
		c2.Add(job.COMBINE_OUTPUT_RECORDS, mc.CombineOutputRecords)
		c2.Add(job.SPILLED_RECORDS, mc.SpilledRecords)
		if fmt.Sprint(c1) != fmt.Sprint(c2) {
			t.Errorf("map %d counters: shipped %v, in process %v", i, c1, c2)
		}
		for _, ext := range []string{".data", ".index"} {
			a, err1 := os.ReadFile(filepath.Join(dirShipped, ti.TaskID+ext))
			b, err2 := os.ReadFile(filepath.Join(dirLocal, ti.TaskID+ext))
			if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
				t.Errorf("map %d %s differs (%v, %v)", i, ext, err1, err2)
			}
		}
	}
	// Reduce partition 0 of both map outputs, shipped and in process.
	st := shuffle.NewStore(filepath.Dir(dirShipped))
	var segs []io.Reader
	for i := range inputs {
		r, _, err := st.Open(filepath.Base(dirShipped), job.MapTaskID(i), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		b, _ := io.ReadAll(r)
		segs = append(segs, bytes.NewReader(b))
	}
	reduce := func(j *job.Job) ([]string, job.Counters) {
		var rs []io.Reader
		for _, s := range segs {
			b := *(s.(*bytes.Reader))
			rs = append(rs, &b)
		}
		groups := func(fn func([]byte, job.Values) error) error {
			_, err := shuffle.Merge(rs, t.TempDir(), func(k []byte, vs shuffle.ValueIter) error { return fn(k, vs) })
			return err
		}
		var out collect
		c, err := job.RunReduceTask(ctx, job.Task{Job: j, Info: job.TaskInfo{JobID: "j1", TaskID: job.ReduceTaskID(0), Params: info.Params}}, groups, &out)
		if err != nil {
			t.Fatalf("reduce: %v", err)
		}
		return out.lines, c
	}
	got, c1 := reduce(shipped)
	want, c2 := reduce(local)
	if strings.Join(got, "\n") != strings.Join(want, "\n") || len(want) == 0 {
		t.Errorf("reduce output: shipped %q, in process %q", got, want)
	}
	if fmt.Sprint(c1) != fmt.Sprint(c2) {
		t.Errorf("reduce counters: shipped %v, in process %v", c1, c2)
	}
	if n := p.Started() - started; n != 1 {
		t.Errorf("%d workers started for 3 tasks run one after another, want 1", n)
	}
}

// TestMapOnlyAndStatus: a map-only shipped job's pairs come back to the
// agent in order.
func TestMapOnly(t *testing.T) {
	p := newPool(t, "")
	info := describe(t, p, nil)
	info.MapOnly = true
	j := shippedJob(t, p, info, "")
	var out collect
	c, err := job.RunMapTask(context.Background(), job.Task{Job: j, Info: job.TaskInfo{JobID: "j2", TaskID: "m-000000"}}, textInput("b a", "a"), &out)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(out.lines, ","); got != "b\t1,a\t1,a\t1" {
		t.Errorf("output %q", got)
	}
	if c[job.MAP_INPUT_RECORDS] != 2 || c[job.MAP_OUTPUT_RECORDS] != 3 {
		t.Errorf("counters %v", c)
	}
}

// TestUserCountersAndStatus: the counters and status line of the user's
// code in the worker reach the agent's driver.
func TestUserCountersAndStatus(t *testing.T) {
	p := newPool(t, "")
	info, err := p.Describe(context.Background(), testBinary(t), "counting", nil)
	if err != nil {
		t.Fatal(err)
	}
	j := shippedJob(t, p, info, "")
	var statuses []string
	var prx any
	task := job.Task{Job: j, Info: job.TaskInfo{JobID: "j5", TaskID: "m-000000"}, Watch: func(user any) func() {
		prx = user
		return func() { statuses = append(statuses, user.(job.StatusSource).Status()) }
	}}
	c, err := job.RunMapTask(context.Background(), task, textInput("a", "slow", "b"), &collect{})
	if err != nil {
		t.Fatal(err)
	}
	if c["LINES_SEEN"] != 3 || c[job.MAP_INPUT_RECORDS] != 3 || c[job.MAP_OUTPUT_RECORDS] != 3 {
		t.Errorf("counters %v", c)
	}
	if len(statuses) != 1 || statuses[0] != "busy" {
		t.Errorf("status %q", statuses)
	}
	if ps, ok := prx.(job.ProgressSource); !ok || ps.Progress() == 0 {
		t.Errorf("no progress from %T", prx)
	}
}

// TestBadPrograms: every way a shipped program can be wrong is a clear
// error, never a hang.
func TestBadPrograms(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	text := filepath.Join(dir, "script")
	os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755)
	notExec := filepath.Join(dir, "notexec")
	b, _ := os.ReadFile(testBinary(t))
	os.WriteFile(notExec, b, 0o644)
	other := filepath.Join(dir, "other-arch")
	src := filepath.Join(dir, "main.go")
	os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644)
	goarch := "arm64"
	if runtime.GOARCH == "arm64" {
		goarch = "amd64"
	}
	build := exec.Command("go", "build", "-o", other, src)
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build for %s: %v\n%s", goarch, err, out)
	}
	cases := []struct {
		name, bin, mode, want string
	}{
		{"not a Go executable", text, "", "not a Go executable"},
		{"not executable", notExec, "", "permission denied: not executable"},
		{"another architecture", other, "", "is built for linux/" + goarch + ", but this node runs"},
		{"exits at start", testBinary(t), "exit-at-start", "exited with status 4 at start, before answering as a Shoal worker (is it a Go program whose main calls cli.Main?); last output lines:\nworker: cannot start: no configuration"},
		{"another protocol version", testBinary(t), "old-proto", fmt.Sprintf("speaks worker protocol %d, this agent %d: rebuild it", Proto+1, Proto)},
		{"garbage instead of a hello", testBinary(t), "garbage-hello", "does not speak the worker protocol"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newPool(t, c.mode)
			_, err := p.Describe(ctx, c.bin, "words", nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
	p := newPool(t, "")
	if _, err := p.Describe(ctx, testBinary(t), "nosuch", nil); !errors.Is(err, ErrBadJob) || !strings.Contains(err.Error(), `unknown job "nosuch"`) {
		t.Errorf("unknown job: %v", err)
	}
	if _, err := p.Describe(ctx, testBinary(t), "words", map[string]string{"x": "1"}); !errors.Is(err, ErrBadJob) || !strings.Contains(err.Error(), "unknown parameter x") {
		t.Errorf("bad parameter: %v", err)
	}
}

// TestWorkerFailures: a worker that crashes, writes garbage or hangs fails
// its task's attempt with a clear error and is gone; user errors keep
// their kind.
func TestWorkerFailures(t *testing.T) {
	ctx := context.Background()
	p := newPool(t, "")
	info := describe(t, p, nil)
	info.MapOnly = true
	j := shippedJob(t, p, info, "")
	run := func(word string, timeout time.Duration) error {
		_, err := job.RunMapTask(ctx, job.Task{Job: j, Timeout: timeout, Info: job.TaskInfo{JobID: "j3", TaskID: "m-000000"}},
			textInput("ok", word, "more"), &collect{})
		return err
	}
	check := func(name string, err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", name, err, want)
		}
	}
	err := run("crash", 0)
	check("crash", err, "exited with status 7 during task m-000000; last output lines:\nabout to crash on purpose")
	check("garbage", run("garbage", 0), "worker process broke the protocol during task m-000000")
	err = run("hang", time.Second)
	var te *job.TimeoutError
	if !errors.As(err, &te) {
		t.Errorf("hang: error %v, want a timeout", err)
	}
	err = run("fail", 0)
	check("fail", err, "the word fail")
	if !job.IsUserError(err) || job.IsPermanent(err) {
		t.Errorf("fail: %v is not a user error", err)
	}
	err = run("permanent", 0)
	if !job.IsPermanent(err) {
		t.Errorf("permanent: %v is not permanent", err)
	}
	// Every worker of these attempts is gone: none was given back.
	p.mu.Lock()
	idle := len(p.idle["j3"])
	p.mu.Unlock()
	if idle != 0 {
		t.Errorf("%d failed workers kept", idle)
	}
	if err := run("fine", 0); err != nil {
		t.Errorf("a task after the failures: %v", err)
	}

	// A failure outside the job's code (the shuffle dir is a file) is a
	// SystemError, which runners count as their own.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	info.MapOnly = false
	j = shippedJob(t, p, info, filepath.Join(file, "sub"))
	_, err = job.RunMapTask(ctx, job.Task{Job: j, Info: job.TaskInfo{JobID: "j3", TaskID: "m-000001"}}, textInput("a"), &collect{})
	if !IsSystemError(err) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("unwritable shuffle dir: %v (system error: %v)", err, IsSystemError(err))
	}
}

// TestWorkerDiesWithLifeline: a worker whose agent is gone (its lifeline
// closed) exits, and CloseJob ends a job's idle workers.
func TestWorkerDiesWithLifeline(t *testing.T) {
	p := newPool(t, "")
	w, err := p.start(context.Background(), "j4", testBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = w.life.Close()
	select {
	case <-w.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker outlived its lifeline")
	}
	var ee *exec.ExitError
	if !errors.As(w.waitErr, &ee) || ee.ExitCode() != 3 {
		t.Errorf("worker ended with %v, want exit status 3", w.waitErr)
	}
	w2, err := p.start(context.Background(), "j4", testBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	p.put("j4", w2)
	p.CloseJob("j4")
	select {
	case <-w2.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("CloseJob left the idle worker running")
	}
	if err := syscall.Kill(w2.pid, 0); err == nil {
		t.Error("worker process still exists")
	}
}

// TestServeRejectsBadFrames drives Serve's loop with bytes that break the
// protocol: each is an error, not a hang or a panic.
func TestServeRejectsBadFrames(t *testing.T) {
	frame := func(t byte, p []byte) []byte {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		writeFrame(w, t, p)
		w.Flush()
		return b.Bytes()
	}
	msg := func(t byte, v any) []byte {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		writeMsg(w, t, v)
		return b.Bytes()
	}
	hi := msg(frameHello, hello{Proto: Proto})
	task := msg(frameTask, taskReq{Name: "words", Params: map[string]string{"suffix": ""}, JobID: "j", TaskID: "m-000000", MapOnly: true})
	cases := map[string][]byte{
		"unknown type":     append(append([]byte{}, hi...), 'Z', 0, 0, 0, 0),
		"oversized frame":  append(append([]byte{}, hi...), frameData, 0xff, 0xff, 0xff, 0xff),
		"cut frame":        append(append([]byte{}, hi...), frameTask, 0, 0, 1, 0, 1, 2),
		"bad msgpack":      append(append([]byte{}, hi...), frame(frameTask, []byte{0xc1})...),
		"bad pair":         append(append(append([]byte{}, hi...), task...), frame(frameData, []byte{0x05, 'a'})...),
		"no hello":         task,
		"input ends early": append(append(append([]byte{}, hi...), task...), frame(frameData, appendPair(nil, []byte("k"), []byte("v"), false))...),
	}
	for name, in := range cases {
		var out bytes.Buffer
		err := serve(context.Background(), testRegistry(), bytes.NewReader(in), &out)
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("%s: serve returned %v", name, err)
		}
	}
}
