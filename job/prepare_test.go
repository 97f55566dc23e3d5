package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Tests of the job API's output formats, generator jobs, Prepare and
// Sampler.

func TestAppendOutput(t *testing.T) {
	tests := []struct {
		f          OutputFormat
		key, value string
		want       string
	}{
		{TextOutput, "k", "v", "k\tv\n"},
		{TextOutput, "k", "", "k\n"},
		{TextOutput, "", "", "\n"},
		{RawOutput, "0123456789", "  rest\r", "0123456789  rest\r\n"},
		{RawOutput, "k", "", "k\n"},
		{RawOutput, "", "v", "v\n"},
	}
	for _, tt := range tests {
		got := AppendOutput([]byte("x"), tt.f, []byte(tt.key), []byte(tt.value))
		if string(got) != "x"+tt.want {
			t.Errorf("AppendOutput(%v, %q, %q) = %q, want %q", tt.f, tt.key, tt.value, got[1:], tt.want)
		}
	}
	if string(AppendOutput(nil, TextOutput, []byte("a"), []byte("b"))) != string(AppendRecord(nil, []byte("a"), []byte("b"))) {
		t.Error("TextOutput is not AppendRecord")
	}
	buf := make([]byte, 0, 64)
	k, v := []byte("key"), []byte("value")
	for _, f := range []OutputFormat{TextOutput, RawOutput} {
		if a := testing.AllocsPerRun(100, func() { buf = AppendOutput(buf[:0], f, k, v) }); a != 0 {
			t.Errorf("%v allocates %v times", f, a)
		}
	}
	if TextOutput.String() != "text" || RawOutput.String() != "raw" || OutputFormat(9).String() != "OutputFormat(9)" {
		t.Error("OutputFormat names")
	}
	defer func() {
		if recover() == nil {
			t.Error("unknown format did not panic")
		}
	}()
	AppendOutput(nil, OutputFormat(9), k, v)
}

func TestJobValidateAdditions(t *testing.T) {
	m := func(TaskInfo) (Mapper, error) { return nil, nil }
	for name, j := range map[string]*Job{
		"negative generate": {NewMapper: m, MapOnly: true, Generate: -1},
		"bad output":        {NewMapper: m, MapOnly: true, Output: 2},
	} {
		if err := j.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		}
	}
	if err := (&Job{NewMapper: m, MapOnly: true, Generate: 3, Output: RawOutput}).Validate(); err != nil {
		t.Errorf("generator: %v", err)
	}
}

func TestRunSequentialRawOutput(t *testing.T) {
	// Split each line after 3 bytes; RawOutput puts it back together.
	split := &Job{
		Output: RawOutput,
		NewMapper: func(TaskInfo) (Mapper, error) {
			return MapperFunc(func(_, line []byte, out Emitter) error {
				n := min(3, len(line))
				return out.Emit(line[:n], line[n:])
			}), nil
		},
		NewReducer: func(TaskInfo) (Reducer, error) {
			return ReducerFunc(func(k []byte, vs Values, out Emitter) error {
				for v, ok := vs.Next(); ok; v, ok = vs.Next() {
					if err := out.Emit(k, v); err != nil {
						return err
					}
				}
				return nil
			}), nil
		},
	}
	got, _ := run(t, split, inputs("/a", "bbb\tx\r\nab\naaaz\naaay\n"), 1)
	if want := "aaay\naaaz\nab\nbbb\tx\r\n"; got["part-r-00000"] != want {
		t.Errorf("reduce: got %q, want %q", got["part-r-00000"], want)
	}
	split.MapOnly, split.NewReducer = true, nil
	got, _ = run(t, split, inputs("/a", "bbb\tx\r\nab\n"), 0)
	if want := "bbb\tx\r\nab\n"; got["part-m-00000"] != want {
		t.Errorf("map-only: got %q, want %q", got["part-m-00000"], want)
	}
}

// genJob is a generator job of n tasks; task k emits ("k-i", info) for i
// in [0, k], where info is its TaskID and InputFile.
func genJob(n int, mapOnly bool) *Job {
	j := &Job{
		Generate: n,
		MapOnly:  mapOnly,
		NewMapper: func(info TaskInfo) (Mapper, error) {
			return MapperFunc(func(key, value []byte, out Emitter) error {
				if len(value) != 0 {
					return fmt.Errorf("value %q", value)
				}
				k, err := strconv.Atoi(string(key))
				if err != nil {
					return err
				}
				for i := range k + 1 {
					if err := out.Emit(fmt.Appendf(nil, "%d-%d", k, i), []byte(info.TaskID+"|"+info.InputFile)); err != nil {
						return err
					}
				}
				return nil
			}), nil
		},
	}
	if !mapOnly {
		j.NewReducer = func(TaskInfo) (Reducer, error) { return countReducer(), nil }
	}
	return j
}

func TestRunSequentialGenerate(t *testing.T) {
	got, c := run(t, genJob(3, true), nil, 0)
	if want := map[string]string{
		"part-m-00000": "0-0\tm-000000|\n",
		"part-m-00001": "1-0\tm-000001|\n1-1\tm-000001|\n",
		"part-m-00002": "2-0\tm-000002|\n2-1\tm-000002|\n2-2\tm-000002|\n",
	}; !maps.Equal(got, want) {
		t.Errorf("map-only: got %q, want %q", got, want)
	}
	if c.Get(TOTAL_LAUNCHED_MAPS) != 3 || c.Get(MAP_INPUT_RECORDS) != 3 || c.Get(MAP_OUTPUT_RECORDS) != 6 {
		t.Errorf("map-only counters %v", c)
	}

	got, c = run(t, genJob(3, false), nil, 2)
	var all []string
	for _, name := range []string{"part-r-00000", "part-r-00001"} {
		all = append(all, strings.Fields(got[name])...)
	}
	slices.Sort(all)
	if want := []string{"0-0", "1", "1", "1", "1", "1", "1", "1-0", "1-1", "2-0", "2-1", "2-2"}; !slices.Equal(all, want) {
		t.Errorf("with reduce: got %q", got)
	}
	if len(got) != 2 || c.Get(REDUCE_INPUT_GROUPS) != 6 {
		t.Errorf("with reduce: files %q, counters %v", got, c)
	}

	fs := newMemFS()
	_, err := RunSequential(context.Background(), genJob(2, true), "g", nil, inputs("/a", "x\n"), 0, fs.create)
	if err == nil || !strings.Contains(err.Error(), "generator job takes no inputs") {
		t.Errorf("generator with inputs: %v", err)
	}
	if len(fs.files) != 0 {
		t.Errorf("generator with inputs created %v", fs.order)
	}
}

func TestSampleSplits(t *testing.T) {
	tests := []struct {
		n, splits int
		want      []int
	}{
		{0, 10, nil},
		{5, 0, nil},
		{3, 10, []int{0, 1, 2}},
		{10, 10, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{10, 3, []int{0, 3, 6}},
		{100, 4, []int{0, 25, 50, 75}},
		{7, 2, []int{0, 3}},
	}
	for _, tt := range tests {
		if got := SampleSplits(tt.n, tt.splits); !slices.Equal(got, tt.want) {
			t.Errorf("SampleSplits(%d, %d) = %v, want %v", tt.n, tt.splits, got, tt.want)
		}
	}
}

func TestReadSample(t *testing.T) {
	ctx := context.Background()
	data := "line one\r\nk\tv\n\nlast"
	got, err := ReadSample(ctx, strings.NewReader(data), TextInput, 100, 10)
	must(t, err)
	if want := []string{"line one\r", "k\tv", "", "last"}; !slices.Equal(strs(got), want) {
		t.Errorf("text: got %q, want %q", got, want)
	}
	got, err = ReadSample(ctx, strings.NewReader(data), KeyValueInput, 0, 2)
	must(t, err)
	if want := []string{"line one\r", "k"}; !slices.Equal(strs(got), want) {
		t.Errorf("keyvalue, 2: got %q, want %q", got, want)
	}
	// The keys are copies that stay valid (the reader's buffer is reused)
	// and are capped: appending to one does not overwrite the next.
	long := strings.Repeat("abcdefgh\n", 1<<18) // 2.25 MiB: the buffer is reused
	got, err = ReadSample(ctx, strings.NewReader(long), TextInput, 0, 1<<18)
	must(t, err)
	if len(got) != 1<<18 || string(got[0]) != "abcdefgh" || string(got[len(got)-1]) != "abcdefgh" {
		t.Errorf("long: %d keys, first %q", len(got), got[0])
	}
	_ = append(got[0], 'X')
	if string(got[1]) != "abcdefgh" {
		t.Errorf("keys share capacity: %q", got[1])
	}
	if got, err := ReadSample(ctx, strings.NewReader(data), TextInput, 0, 0); err != nil || got != nil {
		t.Errorf("n = 0: %q, %v", got, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ReadSample(cctx, strings.NewReader(data), TextInput, 0, 5); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if _, err := ReadSample(ctx, io.MultiReader(strings.NewReader("a\n"), errReader{}), TextInput, 0, 5); err == nil {
		t.Error("read error not returned")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func strs(b [][]byte) []string {
	s := make([]string, len(b))
	for i, x := range b {
		s[i] = string(x)
	}
	return s
}

func TestNewSampler(t *testing.T) {
	ctx := context.Background()
	var in []Input
	for i := range 5 {
		in = append(in, inputs(fmt.Sprintf("/f%d", i), fmt.Sprintf("%d-a\n%d-b\n%d-c\n", i, i, i))...)
	}
	s := NewSampler(in, TextInput)
	got, err := s.Sample(ctx, 2, 2)
	must(t, err)
	if want := []string{"0-a", "0-b", "2-a", "2-b"}; !slices.Equal(strs(got), want) {
		t.Errorf("2 of 5 splits: got %q, want %q", got, want)
	}
	got, err = s.Sample(ctx, 10, 1)
	must(t, err)
	if want := []string{"0-a", "1-a", "2-a", "3-a", "4-a"}; !slices.Equal(strs(got), want) {
		t.Errorf("all splits: got %q, want %q", got, want)
	}
	if got, err := s.Sample(ctx, 0, 5); err != nil || len(got) != 0 {
		t.Errorf("no splits: %q, %v", got, err)
	}
	if got, err := NewSampler(nil, TextInput).Sample(ctx, 10, 10); err != nil || len(got) != 0 {
		t.Errorf("no inputs: %q, %v", got, err)
	}
	// Inputs opened are closed.
	closed := 0
	in[0].Open = func() (io.ReadCloser, error) {
		return closeFunc{strings.NewReader("x\ny\n"), func() { closed++ }}, nil
	}
	got, err = NewSampler(in, KeyValueInput).Sample(ctx, 1, 1)
	must(t, err)
	if !slices.Equal(strs(got), []string{"x"}) || closed != 1 {
		t.Errorf("got %q, closed %d times", got, closed)
	}
	in[0].Open = func() (io.ReadCloser, error) { return nil, errors.New("gone") }
	if _, err := NewSampler(in, TextInput).Sample(ctx, 1, 1); err == nil || !strings.Contains(err.Error(), "/f0") {
		t.Errorf("open error: %v", err)
	}
}

type closeFunc struct {
	io.Reader
	fn func()
}

func (c closeFunc) Close() error { c.fn(); return nil }

// preparedSpec is a job whose Prepare samples its input and returns the
// sample's first key and the reducer count as parameters.
func preparedSpec(prepare func(ctx context.Context, s Sampler, reducers int) (map[string]string, error), built *[]map[string]string) Spec {
	return Spec{
		Name: "prep",
		Params: []Param{
			{Name: "user", Default: "u"},
			{Name: "first", Usage: "internal"},
			{Name: "reducers", Usage: "internal"},
		},
		Build: func(p map[string]string) (*Job, error) {
			*built = append(*built, p)
			j := identityJob()
			j.DefaultReducers = 3
			j.Prepare = prepare
			return j, nil
		},
	}
}

func TestResolvePrepared(t *testing.T) {
	ctx := context.Background()
	var built []map[string]string
	prepare := func(ctx context.Context, s Sampler, reducers int) (map[string]string, error) {
		keys, err := s.Sample(ctx, 1, 1)
		if err != nil {
			return nil, err
		}
		return map[string]string{"first": string(keys[0]), "reducers": strconv.Itoa(reducers)}, nil
	}
	r := NewRegistry()
	must(t, r.Register(preparedSpec(prepare, &built)))
	must(t, r.Register(echoSpec("plain", nil, Param{Name: "x", Default: "1"})))
	s := NewSampler(inputs("/a", "hello\nworld\n"), TextInput)

	params := map[string]string{"user": "me"}
	j, got, err := r.ResolvePrepared(ctx, "prep", params, s, 0)
	must(t, err)
	want := map[string]string{"user": "me", "first": "hello", "reducers": "3"}
	if !maps.Equal(got, want) || j == nil {
		t.Errorf("params %v, want %v", got, want)
	}
	if len(built) != 2 || !maps.Equal(built[1], want) || built[0]["first"] != "" {
		t.Errorf("Build saw %v", built)
	}
	if !maps.Equal(params, map[string]string{"user": "me"}) {
		t.Errorf("params modified: %v", params)
	}
	if _, got, _ := r.ResolvePrepared(ctx, "prep", nil, s, 5); got["reducers"] != "5" {
		t.Errorf("requested reducers: %v", got)
	}
	// Prepare's values replace given ones.
	if _, got, _ := r.ResolvePrepared(ctx, "prep", map[string]string{"first": "mine"}, s, 0); got["first"] != "hello" {
		t.Errorf("given value kept: %v", got)
	}

	// A job without Prepare: resolved once, params filled, sampler unused.
	j, got, err = r.ResolvePrepared(ctx, "plain", nil, nil, 0)
	if err != nil || j == nil || !maps.Equal(got, map[string]string{"x": "1"}) {
		t.Errorf("plain: %v, %v", got, err)
	}
	if _, _, err := r.ResolvePrepared(ctx, "nope", nil, s, 0); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("unknown job: %v", err)
	}
	if _, _, err := r.ResolvePrepared(ctx, "prep", map[string]string{"bad": "1"}, s, 0); !errors.Is(err, ErrBadParam) {
		t.Errorf("bad param: %v", err)
	}

	for name, tt := range map[string]struct {
		prepare func(context.Context, Sampler, int) (map[string]string, error)
		want    string
	}{
		"error": {func(context.Context, Sampler, int) (map[string]string, error) {
			return nil, errors.New("no sample")
		}, "prep: prepare: no sample"},
		"panic": {func(context.Context, Sampler, int) (map[string]string, error) {
			panic("oops")
		}, "prep: prepare: panic: oops"},
		"undeclared": {func(context.Context, Sampler, int) (map[string]string, error) {
			return map[string]string{"first": "x", "zzz": "1"}, nil
		}, "prep: prepare returned parameter zzz, which the job does not declare"},
	} {
		r := NewRegistry()
		must(t, r.Register(preparedSpec(tt.prepare, new([]map[string]string))))
		if _, _, err := r.ResolvePrepared(ctx, "prep", nil, s, 0); err == nil || err.Error() != tt.want {
			t.Errorf("%s: got %v, want %s", name, err, tt.want)
		}
	}

	// Build rejecting the prepared parameters, and a rebuilt job with
	// another reducer count, are errors.
	r = NewRegistry()
	must(t, r.Register(Spec{
		Name:   "fickle",
		Params: []Param{{Name: "n"}},
		Build: func(p map[string]string) (*Job, error) {
			j := identityJob()
			j.DefaultReducers = 2
			switch p["n"] {
			case "bad":
				return nil, errors.New("param n: bad")
			case "4":
				j.DefaultReducers = 4
			}
			j.Prepare = func(_ context.Context, _ Sampler, reducers int) (map[string]string, error) {
				if reducers == 2 {
					return map[string]string{"n": "4"}, nil
				}
				return map[string]string{"n": "bad"}, nil
			}
			return j, nil
		},
	}))
	if _, _, err := r.ResolvePrepared(ctx, "fickle", nil, s, 0); err == nil || !strings.Contains(err.Error(), "prepared for 2 reducers, but the rebuilt job has 4") {
		t.Errorf("reducers changed: %v", err)
	}
	if _, _, err := r.ResolvePrepared(ctx, "fickle", nil, s, 7); !errors.Is(err, ErrBadParam) || !strings.Contains(err.Error(), "rebuild after prepare: fickle: param n: bad") {
		t.Errorf("bad prepared param: %v", err)
	}
}

// TestRunSequentialPrepared runs a prepared job end to end as the CLI's
// --local mode does: the sampler over the run's inputs, the prepared
// params to every task.
func TestRunSequentialPrepared(t *testing.T) {
	ctx := context.Background()
	r := NewRegistry()
	must(t, r.Register(Spec{
		Name:   "tag",
		Params: []Param{{Name: "tag", Usage: "internal: the first line of the input"}},
		Build: func(p map[string]string) (*Job, error) {
			tag := []byte(p["tag"])
			return &Job{
				MapOnly: true,
				NewMapper: func(TaskInfo) (Mapper, error) {
					return MapperFunc(func(_, line []byte, out Emitter) error { return out.Emit(tag, line) }), nil
				},
				Prepare: func(ctx context.Context, s Sampler, reducers int) (map[string]string, error) {
					if reducers != 0 {
						return nil, fmt.Errorf("map-only job got %d reducers", reducers)
					}
					keys, err := s.Sample(ctx, 1, 1)
					if err != nil || len(keys) == 0 {
						return nil, fmt.Errorf("sample: %v", err)
					}
					return map[string]string{"tag": string(keys[0])}, nil
				},
			}, nil
		},
	}))
	in := inputs("/a", "first\nsecond\n", "/b", "third\n")
	j0, err := r.Resolve("tag", nil)
	must(t, err)
	j, params, err := r.ResolvePrepared(ctx, "tag", nil, NewSampler(in, j0.Input), 0)
	must(t, err)
	fs := newMemFS()
	if _, err := RunSequential(ctx, j, "p", params, in, 0, fs.create); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{
		"part-m-00000": "first\tfirst\nfirst\tsecond\n",
		"part-m-00001": "first\tthird\n",
	}; !maps.Equal(fs.contents(t), want) {
		t.Errorf("got %q, want %q", fs.contents(t), want)
	}
}
