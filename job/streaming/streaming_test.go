package streaming

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"shoal.dev/shoal/job"
)

func TestRegister(t *testing.T) {
	r := job.NewRegistry()
	Register(r)
	s, ok := r.Lookup(Name)
	if !ok {
		t.Fatal("streaming is not registered")
	}
	var names []string
	for _, p := range s.Params {
		names = append(names, p.Name)
	}
	want := []string{"mapper", "reducer", "combiner", "cmdenv", "files", "input", "partitioner",
		"partitioner_options", "key_field_separator", "comparator_options", "map_output_separator",
		"map_output_key_fields", "reduce_output_separator", "reduce_output_key_fields", "pack"}
	if !slices.Equal(names, want) {
		t.Errorf("params %v, want %v", names, want)
	}

	j, err := r.Resolve(Name, map[string]string{
		"mapper": "cat", "reducer": "sort", "combiner": "uniq",
		"cmdenv": "A=1\n\nB_2=x=y\r\n", "files": "/a/m.py\n  b/r.sh  \n", "input": "kv",
	})
	if err != nil {
		t.Fatal(err)
	}
	if j.MapOnly || j.NewReducer == nil || j.NewCombiner != nil || j.Input != job.KeyValueInput ||
		!slices.Equal(j.Files, []string{"/a/m.py", "b/r.sh"}) || j.Partitioner != nil {
		t.Errorf("job %+v", j)
	}
	for _, reducer := range []string{"", "NONE", " NONE "} {
		j, err := r.Resolve(Name, map[string]string{"mapper": "cat", "reducer": reducer})
		if err != nil || !j.MapOnly || j.NewReducer != nil {
			t.Errorf("reducer %q: map-only %v, %v", reducer, j != nil && j.MapOnly, err)
		}
	}
	if _, err := r.Resolve(Name, map[string]string{"mapper": "cat", "partitioner": "hash"}); err != nil {
		t.Error(err)
	}
}

func TestBuildErrors(t *testing.T) {
	r := job.NewRegistry()
	Register(r)
	for _, tc := range []struct {
		params map[string]string
		want   string
	}{
		{map[string]string{}, "missing required parameter mapper for streaming"},
		{map[string]string{"mapper": " \n"}, "streaming: param mapper: must not be empty"},
		{map[string]string{"mapper": "cat", "combiner": "uniq"}, "streaming: param combiner: a map-only job (no reducer) has no combiner"},
		{map[string]string{"mapper": "cat", "cmdenv": "A=1\nB"}, `streaming: param cmdenv: line 2 "B": want NAME=VALUE`},
		{map[string]string{"mapper": "cat", "cmdenv": "1A=x"}, `streaming: param cmdenv: line 1: bad variable name "1A": want a letter or '_', then letters, digits or '_'`},
		{map[string]string{"mapper": "cat", "files": "a/m.py\nb/m.py"}, "streaming: param files: a/m.py and b/m.py have the same name m.py in the working directory"},
		{map[string]string{"mapper": "cat", "files": "a/.."}, `streaming: param files: "a/.." is not a file`},
		{map[string]string{"mapper": "cat", "input": "csv"}, `streaming: param input: unknown input format "csv" (want text or keyvalue)`},
		{map[string]string{"mapper": "cat", "reducer": "cat", "partitioner": "total-order"}, `streaming: param partitioner: unknown partitioner "total-order"; supported: hash (the default), keyfield`},
		{map[string]string{"mapper": "cat", "reducer": "cat", "partitioner_options": "-k1,1"}, "streaming: param partitioner_options: only the keyfield partitioner takes options"},
		{map[string]string{"mapper": "cat", "reducer": "cat", "map_output_key_fields": "0"}, `streaming: param map_output_key_fields: key fields "0": want a whole number from 1 to 1000`},
		{map[string]string{"mapper": "cat", "reducer": "cat", "comparator_options": "-k2,2"}, "streaming: param comparator_options: unsupported key field option: Shoal sorts keys bytewise, which is -k1,1 -k2,2 … (each field in turn, from the first); these options order keys otherwise"},
		{map[string]string{"mapper": "cat", "pack": "yes"}, `streaming: param pack: "yes", want true or false`},
	} {
		_, err := r.Resolve(Name, tc.params)
		if err == nil || err.Error() != tc.want || !errors.Is(err, job.ErrBadParam) {
			t.Errorf("%v: got %v, want %s", tc.params, err, tc.want)
		}
	}
	if _, err := NewSpec(Config{CombineBufferBytes: -1}); err == nil {
		t.Error("negative combine buffer accepted")
	}
}

// TestShellPipelineMapOnly runs a shell pipeline as a map-only job: its
// output, one part-m file per input, is the pipeline's.
func TestShellPipelineMapOnly(t *testing.T) {
	h := newHarness(t)
	a := "the quick  brown fox\n jumps over\n\nthe lazy dog\n"
	b := "a bb ccc dddd"
	files, c, err := h.run(map[string]string{
		"mapper":  `tr -s ' ' '\n' | cut -c1-3 | awk 'NF { print $0 "\t" length($0) }'`,
		"reducer": "NONE",
	}, inputs("/in/a", a, "/in/b", b), 0)
	if err != nil {
		t.Fatal(err)
	}
	expect := func(text string) string {
		var out strings.Builder
		for _, w := range strings.Fields(text) {
			w = w[:min(3, len(w))]
			fmt.Fprintf(&out, "%s\t%d\n", w, len(w))
		}
		return out.String()
	}
	want := map[string]string{"part-m-00000": expect(a), "part-m-00001": expect(b)}
	for name, data := range want {
		if files[name] != data {
			t.Errorf("%s = %q, want %q", name, files[name], data)
		}
	}
	if len(files) != len(want) {
		t.Errorf("files %v", sortedKeys(files))
	}
	if n := c.Get(job.MAP_OUTPUT_RECORDS); n != 13 {
		t.Errorf("MAP_OUTPUT_RECORDS = %d, want 13", n)
	}
}

// TestIdentityRoundTrip checks the reducer's input format: cat as mapper
// (on kv input) and reducer gives back the input records, sorted, exactly
// as AppendRecord writes them: empty values, tabs in values, empty keys.
func TestIdentityRoundTrip(t *testing.T) {
	h := newHarness(t)
	in := "b\t2\na\t1\nempty\nempty\t\ntabs\tx\ty\tz\n\t\nc\r\t3\r\na\t0\n"
	files, _, err := h.run(map[string]string{"mapper": "cat", "reducer": "cat", "input": "kv"}, inputs("/in", in), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := "\n" + "a\t0\n" + "a\t1\n" + "b\t2\n" + "c\r\t3\r\n" + "empty\n" + "empty\n" + "tabs\tx\ty\tz\n"
	if got := files["part-r-00000"]; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	// Text input: the mapper reads the lines, not the offsets.
	files, _, err = h.run(map[string]string{"mapper": "cat", "reducer": "NONE"}, inputs("/in", "x y\n\nz\tw"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := files["part-m-00000"], "x y\n\nz\tw\n"; got != want {
		t.Errorf("text input: got %q, want %q", got, want)
	}
}

// TestReducerRunsWithoutInput: like Hadoop, every reducer runs once, with
// or without input; so does a mapper of an empty input.
func TestReducerRunsWithoutInput(t *testing.T) {
	h := newHarness(t)
	files, _, err := h.run(map[string]string{
		"mapper":  "cat >/dev/null; echo m-$mapreduce_task_id",
		"reducer": `n=$(wc -l); echo "r-$mapreduce_task_partition	$n"`,
	}, inputs("/in", ""), 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, name := range sortedKeys(files) {
		got = append(got, name+": "+files[name])
	}
	p := job.HashPartitioner.Partition([]byte("m-m-000000"), 3)
	want := make([]string, 3)
	for i := range want {
		n := 0
		if i == p {
			n = 1
		}
		want[i] = fmt.Sprintf("part-r-%05d: r-%d\t%d\n", i, i, n)
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestEnvironment checks the task's variables, cmdenv, the working
// directory with the shipped files, and PATH leading to them.
func TestEnvironment(t *testing.T) {
	h := newHarness(t)
	src := t.TempDir()
	tool := writeFile(t, src, "tool.sh", "echo tool ran\n", 0o600) // shipped files become executable
	data := writeFile(t, src, "data.txt", "shipped\n", 0o600)
	t.Setenv("STREAMING_TEST_PARENT", "inherited")
	t.Setenv("SHOAL_SECRET", "not for user code")
	mapper := `cat >/dev/null; env | grep -E '^(mapreduce_|STREAMING_TEST_|MY_|SHOAL_)' | sort; ls; cat data.txt; tool.sh; ` +
		`[ -x tool.sh ] && echo executable; pwd >"$STREAMING_TEST_PWD"`
	pwdFile := filepath.Join(t.TempDir(), "pwd")
	t.Setenv("STREAMING_TEST_PWD", pwdFile)
	files, _, err := h.run(map[string]string{
		"mapper":  mapper,
		"reducer": `cat; echo "reduce $mapreduce_task_partition $mapreduce_task_ismap $mapreduce_task_attempt_id"`,
		"cmdenv":  "MY_A=1\nMY_B=two words\nSTREAMING_TEST_PARENT=overridden",
		"files":   tool + "\n" + data,
	}, inputs("/in/file", "x\n"), 2)
	if err != nil {
		t.Fatal(err)
	}
	mapped := []string{
		"MY_A=1", "MY_B=two words", "STREAMING_TEST_PARENT=overridden", "STREAMING_TEST_PWD=" + pwdFile,
		"data.txt", "executable",
		"mapreduce_job_id=job-1", "mapreduce_map_input_file=/in/file",
		"mapreduce_task_attempt_id=job-1_m-000000_0", "mapreduce_task_id=m-000000", "mapreduce_task_ismap=true",
		"shipped", "tool ran", "tool.sh",
	}
	for p := range 2 {
		var want []string
		for _, l := range mapped {
			if job.HashPartitioner.Partition([]byte(l), 2) == p {
				want = append(want, l)
			}
		}
		want = append(want, fmt.Sprintf("reduce %d false job-1_r-%05d_0", p, p))
		got := strings.Split(strings.TrimSuffix(files[job.ReduceOutputName(p)], "\n"), "\n")
		if !slices.Equal(got, want) {
			t.Errorf("partition %d:\ngot  %q\nwant %q", p, got, want)
		}
	}
	// The task's working directory is gone.
	dir, err := os.ReadFile(pwdFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(strings.TrimSpace(string(dir))); !os.IsNotExist(err) {
		t.Errorf("working directory %s: %v", dir, err)
	}
}

// TestReporter checks reporter:counter and reporter:status lines, and that
// other stderr lines do not count.
func TestReporter(t *testing.T) {
	h := newHarness(t)
	j, params := h.resolve(map[string]string{
		"mapper": `while read l; do echo "reporter:counter:Words,Lines,1" >&2; echo "$l"; done; ` +
			`echo "reporter:counter:Words,Big,-5" >&2; echo "reporter:counter:bad,3" >&2; echo noise >&2; ` +
			`echo "reporter:status:mapped all" >&2`,
		"reducer": `cat; echo "reporter:counter:Words,Lines,100" >&2`,
	})
	m, err := j.NewMapper(job.TaskInfo{JobID: "j", TaskID: "m-000000", Params: params})
	if err != nil {
		t.Fatal(err)
	}
	var out pairs
	for _, l := range []string{"a", "b", "c"} {
		if err := m.Map(nil, []byte(l), &out); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.(job.Closer).Close(&out); err != nil {
		t.Fatal(err)
	}
	if got := string(out.buf); got != "a\nb\nc\n" {
		t.Errorf("output %q", got)
	}
	c := m.(job.CounterSource).Counters()
	if len(c) != 2 || c.Get("Words:Lines") != 3 || c.Get("Words:Big") != -5 {
		t.Errorf("counters %v", c)
	}
	if s := m.(job.StatusSource).Status(); s != "mapped all" {
		t.Errorf("status %q", s)
	}

	// Through RunSequential: the mapper's and reducer's counters add up.
	_, c, err = runJob(t, j, params, inputs("/a", "1\n2\n", "/b", "3\n"), 2)
	if err != nil {
		t.Fatal(err)
	}
	if c.Get("Words:Lines") != 3+2*100 || c.Get("Words:Big") != -10 {
		t.Errorf("run counters %v", c)
	}
}

// TestCombiner: a combiner summing counts changes map output, not the
// result; with a small buffer it runs several times.
func TestCombiner(t *testing.T) {
	var text strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&text, "w%d w%d the w%d\n", i%7, i%50, i%300)
	}
	sum := `awk -F '\t' '$1 != k { if (NR > 1) print k "\t" n; k = $1; n = 0 } { n += $2 } END { if (NR > 0) print k "\t" n }'`
	params := map[string]string{"mapper": `tr ' ' '\n' | sed 's/$/\t1/'`, "reducer": sum}
	h := newHarness(t)
	plain, c0, err := h.run(params, inputs("/a", text.String(), "/b", "the end\n"), 3)
	if err != nil {
		t.Fatal(err)
	}
	if c0.Get(job.COMBINE_INPUT_RECORDS) != 0 {
		t.Errorf("counters without a combiner: %v", c0)
	}

	for _, tc := range []struct {
		name   string
		buffer int
		runs   int64
	}{{"one run a task", 0, 2}, {"small buffer", 4096, 10}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.cfg.CombineBufferBytes = tc.buffer
			params := with(params, "combiner", `echo reporter:counter:Test,runs,1 >&2; `+sum)
			got, c, err := h.run(params, inputs("/a", text.String(), "/b", "the end\n"), 3)
			if err != nil {
				t.Fatal(err)
			}
			if !equalMaps(got, plain) {
				t.Errorf("output differs from the one without a combiner")
			}
			runs := c.Get("Test:runs")
			if tc.buffer == 0 && runs != tc.runs || runs < tc.runs {
				t.Errorf("combiner ran %d times, want %d or more", runs, tc.runs)
			}
			if in := c.Get(job.COMBINE_INPUT_RECORDS); in != 12002 {
				t.Errorf("COMBINE_INPUT_RECORDS %d, want 12002", in)
			}
			if out := c.Get(job.COMBINE_OUTPUT_RECORDS); out != c.Get(job.MAP_OUTPUT_RECORDS) || out >= 12002 {
				t.Errorf("COMBINE_OUTPUT_RECORDS %d, MAP_OUTPUT_RECORDS %d", out, c.Get(job.MAP_OUTPUT_RECORDS))
			}
		})
	}
}

// with returns a copy of m with k set to v.
func with(m map[string]string, k, v string) map[string]string {
	c := make(map[string]string, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	c[k] = v
	return c
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || v != w {
			return false
		}
	}
	return true
}

// TestFailures: each way a command can fail gives a clear error, without
// hanging and without leaving a process or goroutine behind.
func TestFailures(t *testing.T) {
	src := t.TempDir()
	writeFile(t, src, "noexec.sh", "#!/bin/sh\necho hi\n", 0o644)
	big := strings.Repeat(strings.Repeat("x", 99)+"\n", 20000) // 2 MB: more than the pipes hold
	for _, tc := range []struct {
		name     string
		mapper   string
		reducer  string
		input    string
		want     string // the error's message
		status   int
		signal   syscall.Signal
		wantLine bool // the error is a line too long
	}{{
		name:   "exit 1 with stderr",
		mapper: `cat >/dev/null; for i in $(seq 1 30); do echo "line $i" >&2; done; echo "reporter:status:x" >&2; exit 1`,
		input:  "a\n",
		want: "streaming mapper \"cat >/dev/null; for i in $(seq 1 30); do echo \\\"line $i\\\" >&2; done; echo \\\"reporter:status:x\\\" >&2; exit 1\" " +
			"exited with status 1; last stderr lines:\nline 11\nline 12\nline 13\nline 14\nline 15\nline 16\nline 17\nline 18\nline 19\nline 20\n" +
			"line 21\nline 22\nline 23\nline 24\nline 25\nline 26\nline 27\nline 28\nline 29\nline 30",
		status: 1,
	}, {
		name:   "killed by a signal",
		mapper: `echo dying >&2; kill -9 $$`,
		input:  big,
		want:   "streaming mapper \"echo dying >&2; kill -9 $$\" killed by signal 9 (killed); last stderr lines:\ndying",
		status: -1, signal: syscall.SIGKILL,
	}, {
		name:   "command not found",
		mapper: "no-such-command-xyz --flag",
		input:  "a\n",
		want:   "streaming mapper \"no-such-command-xyz --flag\" exited with status 127: command not found; last stderr lines:\n/bin/sh: 1: no-such-command-xyz: not found",
		status: 127,
	}, {
		name:   "not executable",
		mapper: "./noexec.sh",
		input:  "a\n",
		want:   "streaming mapper \"./noexec.sh\" exited with status 126: permission denied: not executable; last stderr lines:\n/bin/sh: 1: ./noexec.sh: Permission denied",
		status: 126,
	}, {
		name:     "binary output",
		mapper:   "head -c 100000000 /dev/zero",
		input:    "a\n",
		want:     "streaming mapper \"head -c 100000000 /dev/zero\" wrote a line longer than 64 MiB; is it writing binary data? (line too long)",
		wantLine: true,
	}, {
		name:   "exits early with input left",
		mapper: `read l; echo "got $l"; echo bye >&2; exit 3`,
		input:  big,
		want:   "streaming mapper \"read l; echo \\\"got $l\\\"; echo bye >&2; exit 3\" exited with status 3; last stderr lines:\nbye",
		status: 3,
	}, {
		name:    "reducer fails",
		mapper:  "cat",
		reducer: `while read l; do :; done; echo "reduce failed" >&2; exit 2`,
		input:   big,
		want:    "streaming reducer \"while read l; do :; done; echo \\\"reduce failed\\\" >&2; exit 2\" exited with status 2; last stderr lines:\nreduce failed",
		status:  2,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			j, params := h.resolve(map[string]string{"mapper": tc.mapper, "reducer": tc.reducer})
			// The directory of the test's scripts stands for the task's
			// WorkDir, as the runner prepares it.
			info := job.TaskInfo{JobID: "j", TaskID: job.MapTaskID(0), Params: params, WorkDir: src}
			var err error
			if tc.reducer == "" {
				err = mapAll(j, info, tc.input)
			} else {
				_, _, err = runJob(t, j, params, inputs("/in", tc.input), 1)
				err = errors.Unwrap(err) // the task's prefix
			}
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tc.want)
			}
			if tc.wantLine {
				if !errors.Is(err, job.ErrLineTooLong) {
					t.Errorf("%v does not match ErrLineTooLong", err)
				}
				return
			}
			ee, ok := errorsAs[*ExitError](err)
			if !ok || ee.Status != tc.status || ee.Signal != tc.signal {
				t.Errorf("exit error %+v", ee)
			}
		})
	}
}

// mapAll runs a map task of j over the lines of input, as a runner does,
// aborting it if it fails.
func mapAll(j *job.Job, info job.TaskInfo, input string) (err error) {
	m, err := j.NewMapper(info)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			m.(job.Aborter).Abort()
		}
	}()
	var out counter
	for _, l := range strings.SplitAfter(input, "\n") {
		if l == "" {
			continue
		}
		if err := m.Map(nil, []byte(strings.TrimSuffix(l, "\n")), &out); err != nil {
			return err
		}
	}
	return m.(job.Closer).Close(&out)
}

// TestEarlyExitSucceeds: a command that stops reading its input and exits
// with status 0 succeeds with what it wrote, however much input is left.
func TestEarlyExitSucceeds(t *testing.T) {
	h := newHarness(t)
	for _, size := range []int{10, 100000} {
		var in strings.Builder
		for i := range size {
			fmt.Fprintf(&in, "line %d\n", i)
		}
		files, c, err := h.run(map[string]string{"mapper": "head -n 2", "reducer": "NONE"}, inputs("/in", in.String()), 0)
		if err != nil {
			t.Fatalf("%d lines: %v", size, err)
		}
		if got := files["part-m-00000"]; got != "line 0\nline 1\n" {
			t.Errorf("%d lines: got %q", size, got)
		}
		if n := c.Get(job.MAP_INPUT_RECORDS); n != int64(size) {
			t.Errorf("%d lines: MAP_INPUT_RECORDS %d", size, n)
		}
	}
}

// TestStrayProcessesKilled: what a command leaves running in its process
// group is killed when it exits, even while holding its output open.
func TestStrayProcessesKilled(t *testing.T) {
	h := newHarness(t)
	files, _, err := h.run(map[string]string{"mapper": "cat; sleep 1000 &", "reducer": "NONE"}, inputs("/in", "a\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := files["part-m-00000"]; got != "a\n" {
		t.Errorf("got %q", got)
	}
}

// TestAbortBlockedMap aborts a map task blocked writing to a command that
// never reads: Map returns at once, and the command is killed.
func TestAbortBlockedMap(t *testing.T) {
	h := newHarness(t)
	j, params := h.resolve(map[string]string{"mapper": "sleep 1000", "reducer": "NONE"})
	m, err := j.NewMapper(job.TaskInfo{JobID: "j", TaskID: "m-000000", Params: params})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		line := []byte(strings.Repeat("y", 1000))
		for {
			if err := m.Map(nil, line, &counter{}); err != nil {
				errc <- err
				return
			}
		}
	}()
	eventually(t, "Map to block", func() bool { return strings.Contains(stacks(), "streaming.(*proc).flush(") })
	m.(job.Aborter).Abort()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrAborted) || err.Error() != `streaming mapper "sleep 1000": aborted` {
			t.Errorf("Map returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Map did not return after Abort")
	}
	// The command is reaped; what it started dies of the SIGKILL pending
	// (checkGone).
	pgid := h.started()[0]
	if ms := groupMembers(t, pgid); slices.ContainsFunc(ms, func(m member) bool { return m.pid == pgid }) {
		t.Errorf("process group %d after Abort: %+v", pgid, ms)
	}
	m.(job.Aborter).Abort() // again: no-op
	if err := m.(job.Closer).Close(&counter{}); !errors.Is(err, ErrAborted) {
		t.Errorf("Close after Abort: %v", err)
	}
}

// TestCancelRunSequential: cancelling the context of a sequential run
// aborts the streaming task blocked in Close (a reducer that never ends).
func TestCancelRunSequential(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j, params := h.resolve(map[string]string{"mapper": "cat", "reducer": "cat; exec sleep 1000"})
	errc := make(chan error, 1)
	go func() {
		_, err := job.RunSequential(ctx, j, "j", params, inputs("/in", "a\n"), 1, func(string) (io.WriteCloser, error) {
			return nopCloser{io.Discard}, nil
		})
		errc <- err
	}()
	// The mapper has ended and the reducer's Close waits for its command.
	eventually(t, "the reducer's Close to wait", func() bool {
		return len(h.started()) == 2 && strings.Contains(stacks(), "streaming.(*proc).finish(")
	})
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrAborted) {
			t.Errorf("got %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the run did not end after the cancel")
	}
}

// TestLargeOutput: commands writing much more than they read, or writing
// without reading at all, never deadlock.
func TestLargeOutput(t *testing.T) {
	for _, tc := range []struct {
		name, mapper string
		lines        int
		wantN        int64
		wantBytes    int64
	}{
		{"100 times the input", `awk '{ for (i = 0; i < 100; i++) print }'`, 2000, 200000, 200000 * 99},
		{"50 MB without reading", `yes 0123456789012345678901234567890123456789012345678 | head -c 50000000`, 20000, 1000000, 49000000},
		{"50 MB, then reading", `yes 0123456789012345678901234567890123456789012345678 | head -c 50000000; wc -l >&2`, 20000, 1000000, 49000000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			j, params := h.resolve(map[string]string{"mapper": tc.mapper, "reducer": "NONE"})
			m, err := j.NewMapper(job.TaskInfo{JobID: "j", TaskID: "m-000000", Params: params})
			if err != nil {
				t.Fatal(err)
			}
			var out counter
			line := []byte(strings.Repeat("z", 99))
			for range tc.lines {
				if err := m.Map(nil, line, &out); err != nil {
					t.Fatal(err)
				}
			}
			if err := m.(job.Closer).Close(&out); err != nil {
				t.Fatal(err)
			}
			if out.n != tc.wantN || out.bytes != tc.wantBytes {
				t.Errorf("emitted %d pairs, %d bytes; want %d, %d", out.n, out.bytes, tc.wantN, tc.wantBytes)
			}
		})
	}
}

// TestLongLines: lines longer than a chunk are put together; one longer
// than MaxLineBytes fails.
func TestLongLines(t *testing.T) {
	h := newHarness(t)
	h.cfg.MaxLineBytes = 300000
	files, _, err := h.run(map[string]string{
		"mapper":  `cat >/dev/null; head -c 299998 /dev/zero | tr '\0' 'k'; printf '\tv\nlast'`,
		"reducer": "NONE",
	}, inputs("/in", "a\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := files["part-m-00000"], strings.Repeat("k", 299998)+"\tv\nlast\n"; got != want {
		t.Errorf("got %d bytes, want %d", len(got), len(want))
	}
	_, _, err = h.run(map[string]string{
		"mapper":  `cat >/dev/null; head -c 300001 /dev/zero | tr '\0' 'k'; echo`,
		"reducer": "NONE",
	}, inputs("/in", "a\n"), 0)
	if !errors.Is(err, job.ErrLineTooLong) || !strings.Contains(err.Error(), "longer than 300000 bytes") {
		t.Errorf("got %v", err)
	}
}

// TestStartFailure: a command that cannot start fails its task.
func TestStartFailure(t *testing.T) {
	h := newHarness(t)
	j, params := h.resolve(map[string]string{"mapper": "cat", "reducer": "NONE"})
	err := mapAll(j, job.TaskInfo{Params: params, WorkDir: filepath.Join(t.TempDir(), "missing")}, "a\n")
	if err == nil || !strings.HasPrefix(err.Error(), `start streaming mapper "cat": `) {
		t.Errorf("got %v", err)
	}
	j, params = h.resolve(map[string]string{"mapper": "cat", "reducer": "NONE", "files": "/x/m.py"})
	err = mapAll(j, job.TaskInfo{Params: params}, "a\n")
	if err == nil || err.Error() != `start streaming mapper "cat": the job ships files, but the task has no working directory (TaskInfo.WorkDir)` {
		t.Errorf("got %v", err)
	}
	h.cfg.Shell = "/no/such/shell"
	j, params = h.resolve(map[string]string{"mapper": "cat", "reducer": "NONE"})
	if err := mapAll(j, job.TaskInfo{Params: params}, "a\n"); err == nil || !strings.Contains(err.Error(), "/no/such/shell") {
		t.Errorf("got %v", err)
	}
}

func TestExitErrorMessage(t *testing.T) {
	long := strings.Repeat("c", 300)
	e := &ExitError{Role: "reducer", Command: long, Status: 4}
	if got, want := e.Error(), "streaming reducer "+strconv.Quote(long[:200])+"... exited with status 4"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestStderr: a chatty command's stderr is read, not held; lines longer
// than the kept length are cut, and lines longer than the read buffer too;
// Status may be read meanwhile.
func TestStderr(t *testing.T) {
	h := newHarness(t)
	j, params := h.resolve(map[string]string{
		"mapper": `yes 'noise noise noise' | head -n 200000 >&2; cat; echo "reporter:status:half" >&2; ` +
			`head -c 100000 /dev/zero | tr '\0' 'e' >&2; printf '\ntail\nreporter:status:done\nlast' >&2; exit 5`,
		"reducer": "NONE",
	})
	m, err := j.NewMapper(job.TaskInfo{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			default:
				_ = m.(job.StatusSource).Status()
			}
		}
	}()
	var out pairs
	for range 1000 {
		if err := m.Map(nil, []byte("line"), &out); err != nil {
			t.Fatal(err)
		}
	}
	err = m.(job.Closer).Close(&out)
	close(stop)
	<-polled
	ee, ok := errorsAs[*ExitError](err)
	if !ok || ee.Status != 5 {
		t.Fatalf("got %v", err)
	}
	want := append(slices.Repeat([]string{"noise noise noise"}, 17), strings.Repeat("e", maxStderrLine)+"...", "tail", "last")
	if !slices.Equal(ee.Stderr, want) {
		t.Errorf("stderr lines %q", ee.Stderr)
	}
	if s := m.(job.StatusSource).Status(); s != "done" {
		t.Errorf("status %q", s)
	}
	if len(out.buf) != 5000 {
		t.Errorf("output %d bytes", len(out.buf))
	}
}
