package builtin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"shoal.dev/shoal/job"
)

func registry(t testing.TB) *job.Registry {
	t.Helper()
	r := job.NewRegistry()
	Register(r)
	return r
}

type file struct{ path, data string }

func inputsOf(files []file) []job.Input {
	var in []job.Input
	for _, f := range files {
		in = append(in, job.Input{Path: f.path, Open: func() (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(f.data)), nil
		}})
	}
	return in
}

type memFile struct {
	bytes.Buffer
}

func (*memFile) Close() error { return nil }

// runJob resolves name and runs it sequentially, returning the part files.
func runJob(t *testing.T, name string, params map[string]string, files []file, reducers int) (map[string]string, job.Counters, error) {
	t.Helper()
	r := registry(t)
	j, err := r.Resolve(name, params)
	if err != nil {
		t.Fatalf("Resolve(%s): %v", name, err)
	}
	s, _ := r.Lookup(name)
	filled, err := s.FillParams(params)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*memFile)
	create := func(name string) (io.WriteCloser, error) {
		f := new(memFile)
		out[name] = f
		return f, nil
	}
	c, err := job.RunSequential(context.Background(), j, "test", filled, inputsOf(files), reducers, create)
	got := make(map[string]string)
	for name, f := range out {
		got[name] = f.String()
	}
	return got, c, err
}

func mustRun(t *testing.T, name string, params map[string]string, files []file, reducers int) map[string]string {
	t.Helper()
	got, _, err := runJob(t, name, params, files, reducers)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return got
}

func TestRegister(t *testing.T) {
	r := registry(t)
	var names []string
	for _, s := range r.Specs() {
		names = append(names, s.Name)
		if s.Usage == "" {
			t.Errorf("%s has no usage", s.Name)
		}
		params := map[string]string{}
		switch s.Name {
		case "grep":
			params["pattern"] = "x"
		case "teragen":
			params["rows"] = "10"
		}
		if _, err := r.Resolve(s.Name, params); err != nil {
			t.Errorf("Resolve(%s): %v", s.Name, err)
		}
	}
	if got := strings.Join(names, ","); got != "distinct,grep,invertedindex,sum,teragen,terasort,teravalidate,wordcount" {
		t.Errorf("registered %s", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering twice did not panic")
		}
	}()
	Register(r)
}

func TestWordCount(t *testing.T) {
	in := []file{{"/in/a", "a b a\nb c\n"}}
	if got, want := mustRun(t, "wordcount", nil, in, 1), map[string]string{
		"part-r-00000": "a\t2\nb\t2\nc\t1\n",
	}; !maps.Equal(got, want) {
		t.Errorf("1 reducer: got %q, want %q", got, want)
	}
	if got, want := mustRun(t, "wordcount", nil, in, 2), map[string]string{
		"part-r-00000": "a\t2\nc\t1\n", // FNV-1a: a, c → 0; b → 1
		"part-r-00001": "b\t2\n",
	}; !maps.Equal(got, want) {
		t.Errorf("2 reducers: got %q, want %q", got, want)
	}

	// Every ASCII whitespace byte separates words, runs of them count once;
	// a CR stays out of words; other bytes, UTF-8 included, are word bytes.
	in = []file{
		{"/x", "  The\tthe\v\fthe\r\n\n  \nthé the. caf\xc3\xa9\u00a0bar\r\n"},
		{"/y", "the"},
	}
	got, c, err := runJob(t, "wordcount", nil, in, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := "The\t1\ncafé\u00a0bar\t1\nthe\t3\nthe.\t1\nthé\t1\n"
	if got["part-r-00000"] != want {
		t.Errorf("whitespace: got %q, want %q", got["part-r-00000"], want)
	}
	// 7 words, 6 distinct within each file's map task: the mapper emits
	// one pair per word and count.
	if c.Get(job.MAP_INPUT_RECORDS) != 5 || c.Get(job.MAP_OUTPUT_RECORDS) != 6 ||
		c.Get(job.REDUCE_INPUT_GROUPS) != 5 || c.Get(job.REDUCE_OUTPUT_RECORDS) != 5 {
		t.Errorf("counters %v", c)
	}

	if got, want := mustRun(t, "wordcount", nil, []file{{"/e", ""}, {"/f", "\n \n"}}, 2), map[string]string{
		"part-r-00000": "", "part-r-00001": "",
	}; !maps.Equal(got, want) {
		t.Errorf("empty input: got %q", got)
	}
}

func TestGrep(t *testing.T) {
	in := []file{{"/a", "foo food fob\nbar fooo\n"}, {"/b", "xfoox\n"}}
	got := mustRun(t, "grep", map[string]string{"pattern": "fo+"}, in, 1)
	if want := "fo\t1\nfoo\t3\nfooo\t1\n"; got["part-r-00000"] != want {
		t.Errorf("whole match: got %q, want %q", got["part-r-00000"], want)
	}
	got = mustRun(t, "grep", map[string]string{"pattern": `f(o+)(x)?`, "group": "1"}, in, 1)
	if want := "o\t1\noo\t3\nooo\t1\n"; got["part-r-00000"] != want {
		t.Errorf("group 1: got %q, want %q", got["part-r-00000"], want)
	}
	// A group that does not take part in a match emits nothing.
	got = mustRun(t, "grep", map[string]string{"pattern": `f(o+)(?P<end>x)?`, "group": "end"}, in, 1)
	if want := "x\t1\n"; got["part-r-00000"] != want {
		t.Errorf("named group: got %q, want %q", got["part-r-00000"], want)
	}

	r := registry(t)
	tests := []struct {
		params map[string]string
		msg    string
	}{
		{nil, "missing required parameter pattern for grep"},
		{map[string]string{"pattern": "("}, "grep: param pattern: bad regular expression: error parsing regexp: missing closing ): `(`"},
		{map[string]string{"pattern": ""}, "grep: param pattern: must not be empty"},
		{map[string]string{"pattern": "a(b)", "group": "2"}, "grep: param group: 2 is out of range: the pattern has 1 groups"},
		{map[string]string{"pattern": "a(b)", "group": "-1"}, "grep: param group: -1 is out of range: the pattern has 1 groups"},
		{map[string]string{"pattern": "a(b)", "group": "x"}, `grep: param group: "x" is neither a group number nor a group name of the pattern`},
		{map[string]string{"pattern": "a", "grup": "1"}, "unknown parameter grup for grep; it takes: pattern, group"},
	}
	for _, tt := range tests {
		_, err := r.Resolve("grep", tt.params)
		if !errors.Is(err, job.ErrBadParam) || err.Error() != tt.msg {
			t.Errorf("Resolve(grep, %v) = %v, want %q", tt.params, err, tt.msg)
		}
	}
}

func TestInvertedIndex(t *testing.T) {
	in := []file{
		{"/docs/b", "x y x\ny\n"},
		{"/docs/a", "y z\n"},
		{"/docs/c", "z z z\n"},
	}
	got, c, err := runJob(t, "invertedindex", nil, in, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := "x\t/docs/b\ny\t/docs/a,/docs/b\nz\t/docs/a,/docs/c\n"; got["part-r-00000"] != want {
		t.Errorf("got %q, want %q", got["part-r-00000"], want)
	}
	// Distinct per line: "x y x" emits x once; the second line's y again.
	if n := c.Get(job.MAP_OUTPUT_RECORDS); n != 2+1+2+1 {
		t.Errorf("MAP_OUTPUT_RECORDS = %d", n)
	}
}

func TestDistinct(t *testing.T) {
	in := []file{{"/a", "b\na\nb\n\na b\n"}, {"/b", "a\nc\r\nc"}}
	got := mustRun(t, "distinct", nil, in, 1)
	if want := "\na\na b\nb\nc\nc\r\n"; got["part-r-00000"] != want {
		t.Errorf("got %q, want %q", got["part-r-00000"], want)
	}
}

func TestSum(t *testing.T) {
	in := []file{
		{"/a", "k\t 5 \nj\t-3\nk\t+7\n\n"},
		{"/b", "j\t3\r\nk k\t9223372036854775800\nneg\t-9223372036854775808\n"},
	}
	got := mustRun(t, "sum", nil, in, 1)
	if want := "j\t0\nk\t12\nk k\t9223372036854775800\nneg\t-9223372036854775808\n"; got["part-r-00000"] != want {
		t.Errorf("got %q, want %q", got["part-r-00000"], want)
	}

	bad := []struct {
		in, msg string
	}{
		{"k\t1\nkey\t12x\n", `map task m-000000 (input /bad): key "key": bad value "12x": want a decimal int64`},
		{"k\t1\nnotab\n", `map task m-000000 (input /bad): key "notab": bad value "": want a decimal int64`},
		{"k\t9223372036854775808\n", `map task m-000000 (input /bad): key "k": bad value "9223372036854775808": want a decimal int64`},
		{"k\t--1\n", `map task m-000000 (input /bad): key "k": bad value "--1": want a decimal int64`},
		{"k\t1 2\n", `map task m-000000 (input /bad): key "k": bad value "1 2": want a decimal int64`},
		{"big\t9223372036854775807\nbig\t1\n", `reduce task r-00000: key "big": sum overflows int64`},
		{"small\t-9223372036854775808\nsmall\t-1\n", `reduce task r-00000: key "small": sum overflows int64`},
		{"k\t" + strings.Repeat("9", 100) + "\n", `map task m-000000 (input /bad): key "k": bad value "` + strings.Repeat("9", 64) + `"...: want a decimal int64`},
	}
	for _, tt := range bad {
		_, _, err := runJob(t, "sum", nil, []file{{"/bad", tt.in}}, 1)
		if err == nil || err.Error() != tt.msg || !job.IsPermanent(err) {
			t.Errorf("%q: got %v (permanent %v), want %q, permanent: no retry changes the input", tt.in, err, job.IsPermanent(err), tt.msg)
		}
	}
}

func TestParseInt64(t *testing.T) {
	good := map[string]int64{
		"0": 0, "-0": 0, "+0": 0, "007": 7, " 42\t": 42, "\r-1\r": -1,
		"9223372036854775807": 1<<63 - 1, "-9223372036854775808": -1 << 63,
	}
	for s, want := range good {
		if got, ok := parseInt64([]byte(s)); !ok || got != want {
			t.Errorf("parseInt64(%q) = %d, %v; want %d", s, got, ok, want)
		}
	}
	for _, s := range []string{"", " ", "-", "+", "1.5", "1e3", "0x10", "1_000", "9223372036854775808",
		"-9223372036854775809", "99999999999999999999", "١٢"} {
		if got, ok := parseInt64([]byte(s)); ok {
			t.Errorf("parseInt64(%q) = %d, want an error", s, got)
		}
	}
}

// discard is an Emitter that copies nothing and counts pairs.
type discard struct{ n int }

func (d *discard) Emit(k, v []byte) error { d.n++; return nil }

// sliceValues iterates vs.
type sliceValues struct{ vs [][]byte }

func (s *sliceValues) Next() ([]byte, bool) {
	if len(s.vs) == 0 {
		return nil, false
	}
	v := s.vs[0]
	s.vs = s.vs[1:]
	return v, true
}

func TestHotPathsDoNotAllocate(t *testing.T) {
	r := registry(t)
	zero, line := []byte("0"), []byte("the quick  brown fox\tjumps over the lazy dog\r")
	out := &discard{}
	for _, name := range []string{"wordcount", "invertedindex", "distinct"} {
		j, err := r.Resolve(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		m, err := j.NewMapper(job.TaskInfo{InputFile: "/some/file"})
		if err != nil {
			t.Fatal(err)
		}
		m.Map(zero, line, out) // warm up reused buffers
		if a := testing.AllocsPerRun(100, func() { m.Map(zero, line, out) }); a != 0 {
			t.Errorf("%s mapper: %v allocations per line", name, a)
		}
	}
	if out.n == 0 {
		t.Error("nothing emitted")
	}

	ones := [][]byte{[]byte("1"), []byte("22"), []byte(" 3 ")}
	vals := &sliceValues{}
	key := []byte("k")
	for _, mk := range []func(job.TaskInfo) (job.Reducer, error){newSumReducer,
		func(job.TaskInfo) (job.Reducer, error) { return &uniqueReducer{join: true}, nil }} {
		red, _ := mk(job.TaskInfo{})
		vals.vs = ones
		red.Reduce(key, vals, out)
		if a := testing.AllocsPerRun(100, func() { vals.vs = ones; red.Reduce(key, vals, out) }); a != 0 {
			t.Errorf("%T: %v allocations per group", red, a)
		}
	}
	sm := &sumMapper{}
	num := []byte(" 12345 ")
	if a := testing.AllocsPerRun(100, func() { sm.Map(key, num, out) }); a != 0 {
		t.Errorf("sum mapper: %v allocations per record", a)
	}
}

// TestCombinersKeepResults runs each job the way the distributed runner
// may: each map task's output grouped and combined (values in reverse
// order, and combined twice: a combiner may run on its own output), then
// reduced. The result must be RunSequential's.
func TestCombinersKeepResults(t *testing.T) {
	corpus := func(seed uint64) string {
		var b strings.Builder
		if err := GenerateText(&b, 3000, seed); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	text := []file{{"/t/1", corpus(1)}, {"/t/2", corpus(2)}, {"/t/3", "the the\n" + corpus(1)}}
	kv := []file{{"/kv/1", "a\t1\nb\t2\na\t-5\n"}, {"/kv/2", "b\t7\nc\t0\na\t1\n"}}
	tests := []struct {
		name   string
		params map[string]string
		in     []file
	}{
		{"wordcount", nil, text},
		{"grep", map[string]string{"pattern": `\bth(\w+)`, "group": "1"}, text},
		{"invertedindex", nil, text},
		{"distinct", nil, append(slices.Clone(text), text[0])},
		{"sum", nil, kv},
	}
	r := registry(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, reducers := range []int{1, 3} {
				want := mustRun(t, tt.name, tt.params, tt.in, reducers)
				j, err := r.Resolve(tt.name, tt.params)
				if err != nil {
					t.Fatal(err)
				}
				if j.NewCombiner == nil {
					t.Fatal("no combiner")
				}
				combined := make([][]pair, len(tt.in))
				for i, in := range inputsOf(tt.in) {
					info := job.TaskInfo{TaskID: job.MapTaskID(i), InputFile: in.Path}
					pairs := mapAll(t, j, info, in)
					pairs = combine(t, j, info, pairs)
					combined[i] = combine(t, j, info, pairs)
				}
				// Reduce the combined pairs: replay them as map output.
				replay := *j
				replay.Input = job.KeyValueInput
				replay.NewMapper = func(ti job.TaskInfo) (job.Mapper, error) {
					return &replayer{pairs: combined[indexOf(t, ti.TaskID)]}, nil
				}
				empty := make([]file, len(tt.in))
				for i, f := range tt.in {
					empty[i] = file{f.path, ""}
				}
				files := make(map[string]*memFile)
				create := func(name string) (io.WriteCloser, error) {
					f := new(memFile)
					files[name] = f
					return f, nil
				}
				if _, err := job.RunSequential(context.Background(), &replay, "c", tt.params, inputsOf(empty), reducers, create); err != nil {
					t.Fatal(err)
				}
				got := make(map[string]string)
				for name, f := range files {
					got[name] = f.String()
				}
				if !maps.Equal(got, want) {
					t.Errorf("%d reducers: with combiner %q, without %q", reducers, got, want)
				}
			}
		})
	}
}

type pair struct{ k, v string }

func mapAll(t *testing.T, j *job.Job, info job.TaskInfo, in job.Input) []pair {
	t.Helper()
	m, err := j.NewMapper(info)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []pair
	out := job.EmitterFunc(func(k, v []byte) error { pairs = append(pairs, pair{string(k), string(v)}); return nil })
	rc, _ := in.Open()
	if err := job.ReadRecords(rc, j.Input, 0, func(k, v []byte) error { return m.Map(k, v, out) }); err != nil {
		t.Fatal(err)
	}
	if c, ok := m.(job.Closer); ok {
		if err := c.Close(out); err != nil {
			t.Fatal(err)
		}
	}
	return pairs
}

// combine groups pairs by key and runs the combiner on each group, values
// in reverse order of arrival.
func combine(t *testing.T, j *job.Job, info job.TaskInfo, pairs []pair) []pair {
	t.Helper()
	groups := make(map[string][][]byte)
	for _, p := range pairs {
		groups[p.k] = append(groups[p.k], []byte(p.v))
	}
	c, err := j.NewCombiner(info)
	if err != nil {
		t.Fatal(err)
	}
	var out []pair
	emit := job.EmitterFunc(func(k, v []byte) error { out = append(out, pair{string(k), string(v)}); return nil })
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		vs := slices.Clone(groups[k])
		slices.Reverse(vs)
		if err := c.Reduce([]byte(k), &sliceValues{vs}, emit); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// replayer emits its pairs when closed.
type replayer struct{ pairs []pair }

func (r *replayer) Map(_, _ []byte, _ job.Emitter) error { return nil }

func (r *replayer) Close(out job.Emitter) error {
	for _, p := range r.pairs {
		if err := out.Emit([]byte(p.k), []byte(p.v)); err != nil {
			return err
		}
	}
	return nil
}

func indexOf(t *testing.T, taskID string) int {
	for i := range 100 {
		if job.MapTaskID(i) == taskID {
			return i
		}
	}
	t.Fatalf("task %s", taskID)
	return -1
}

// TestWordCountMapperFlushesWhenFull: past wcMaxWords distinct words the
// mapper emits its table and starts again, and the counts it emitted add
// up to every word's count.
func TestWordCountMapperFlushesWhenFull(t *testing.T) {
	m, err := newWordCountMapper(job.TaskInfo{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	emits := 0
	out := job.EmitterFunc(func(k, v []byte) error {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			t.Fatalf("value %q", v)
		}
		got[string(k)] += n
		emits++
		return nil
	})
	const distinct = wcMaxWords + wcMaxWords/2
	for i := range distinct {
		line := []byte(fmt.Sprintf("w%d common w%d", i, i))
		if err := m.Map(nil, line, out); err != nil {
			t.Fatal(err)
		}
	}
	if emits == 0 {
		t.Fatal("a table past its bound emitted nothing before Close")
	}
	if err := m.(job.Closer).Close(out); err != nil {
		t.Fatal(err)
	}
	if len(got) != distinct+1 || got["common"] != distinct || got["w0"] != 2 || got[fmt.Sprintf("w%d", distinct-1)] != 2 {
		t.Fatalf("%d words, common %d, w0 %d", len(got), got["common"], got["w0"])
	}
	if emits <= distinct+1 {
		t.Fatalf("%d pairs emitted for %d words: the table never flushed", emits, distinct+1)
	}
}
