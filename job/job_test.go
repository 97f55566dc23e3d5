package job

import (
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestHashPartitionerIsFNV1a32(t *testing.T) {
	// Hard-coded: these values are a contract across releases.
	tests := []struct {
		key  string
		hash uint32
	}{
		{"", 0x811c9dc5},
		{"a", 0xe40c292c},
		{"b", 0xe70c2de5},
		{"c", 0xe60c2c52},
		{"foobar", 0xbf9cf968},
		{"hello world", 0xd58b3fa7},
		{"shoal", 0xaffbf83e},
	}
	for _, tt := range tests {
		h := fnv.New32a()
		h.Write([]byte(tt.key))
		if h.Sum32() != tt.hash {
			t.Fatalf("test table wrong for %q", tt.key)
		}
		for _, n := range []int{1, 2, 3, 7, 1000, 1 << 31} {
			if got, want := HashPartitioner.Partition([]byte(tt.key), n), int(tt.hash%uint32(n)); got != want {
				t.Errorf("Partition(%q, %d) = %d, want %d", tt.key, n, got, want)
			}
		}
	}
	want := map[string][3]int{ // partitions 2, 3, 7
		"a":           {0, 1, 5},
		"b":           {1, 1, 6},
		"c":           {0, 2, 1},
		"hello world": {1, 0, 0},
	}
	for k, w := range want {
		for i, n := range []int{2, 3, 7} {
			if got := HashPartitioner.Partition([]byte(k), n); got != w[i] {
				t.Errorf("Partition(%q, %d) = %d, want %d", k, n, got, w[i])
			}
		}
	}
	for _, n := range []int{0, -3} {
		if got := HashPartitioner.Partition([]byte("x"), n); got != 0 {
			t.Errorf("Partition with %d partitions = %d, want 0", n, got)
		}
	}
	key := []byte("some key")
	if a := testing.AllocsPerRun(100, func() { HashPartitioner.Partition(key, 8) }); a != 0 {
		t.Errorf("Partition allocates %v times", a)
	}
}

func TestAdaptors(t *testing.T) {
	var got []string
	e := EmitterFunc(func(k, v []byte) error { got = append(got, string(k)+"="+string(v)); return nil })
	m := MapperFunc(func(k, v []byte, out Emitter) error { return out.Emit(k, v) })
	if err := m.Map([]byte("k"), []byte("v"), e); err != nil {
		t.Fatal(err)
	}
	r := ReducerFunc(func(k []byte, vs Values, out Emitter) error {
		for v, ok := vs.Next(); ok; v, ok = vs.Next() {
			if err := out.Emit(k, v); err != nil {
				return err
			}
		}
		return nil
	})
	mo := &mapOutput{parts: make([][]pairRef, 1), partitioner: HashPartitioner}
	must(t, mo.add([]byte("r"), []byte("1")))
	must(t, mo.add([]byte("r"), []byte("2")))
	vs := &groupValues{arena: mo.arena, pairs: mo.parts[0]}
	if err := r.Reduce([]byte("r"), vs, e); err != nil {
		t.Fatal(err)
	}
	if _, ok := vs.Next(); ok {
		t.Error("Values.Next after the end returned a value")
	}
	p := PartitionerFunc(func(k []byte, n int) int { return len(k) % n })
	if got := p.Partition([]byte("abc"), 2); got != 1 {
		t.Errorf("PartitionerFunc: %d", got)
	}
	if want := []string{"k=v", "r=1", "r=2"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTaskNames(t *testing.T) {
	for got, want := range map[string]string{
		MapTaskID(3):         "m-000003",
		ReduceTaskID(1):      "r-00001",
		MapOutputName(12):    "part-m-00012",
		ReduceOutputName(0):  "part-r-00000",
		MapTaskID(1234567):   "m-1234567",
		ReduceOutputName(99): "part-r-00099",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestCounters(t *testing.T) {
	var nilc Counters
	if nilc.Get(MAP_INPUT_RECORDS) != 0 || len(nilc.Names()) != 0 || nilc.Clone() == nil {
		t.Error("reads of a nil Counters")
	}
	c := make(Counters)
	c.Add(MAP_INPUT_RECORDS, 3)
	c.Add(MAP_INPUT_RECORDS, 2)
	c.Add(NUM_FAILED_MAPS, 0)
	c.Merge(Counters{MAP_INPUT_RECORDS: 10, REDUCE_OUTPUT_RECORDS: 1})
	c.Merge(nil)
	if c.Get(MAP_INPUT_RECORDS) != 15 || c.Get(REDUCE_OUTPUT_RECORDS) != 1 {
		t.Errorf("counters: %v", c)
	}
	if got := strings.Join(c.Names(), ","); got != "MAP_INPUT_RECORDS,NUM_FAILED_MAPS,REDUCE_OUTPUT_RECORDS" {
		t.Errorf("Names() = %s", got)
	}
	d := c.Clone()
	d.Add(MAP_INPUT_RECORDS, 1)
	if c.Get(MAP_INPUT_RECORDS) != 15 {
		t.Error("Clone shares the map")
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"MAP_INPUT_RECORDS":15,"NUM_FAILED_MAPS":0,"REDUCE_OUTPUT_RECORDS":1}` {
		t.Errorf("JSON: %s", b)
	}
	var back Counters
	if err := json.Unmarshal(b, &back); err != nil || back.Get(MAP_INPUT_RECORDS) != 15 {
		t.Errorf("JSON round trip: %v, %v", back, err)
	}
	for _, name := range []string{MAP_INPUT_RECORDS, MAP_OUTPUT_RECORDS, MAP_OUTPUT_BYTES,
		COMBINE_INPUT_RECORDS, COMBINE_OUTPUT_RECORDS, SPILLED_RECORDS, REDUCE_SHUFFLE_BYTES,
		REDUCE_INPUT_GROUPS, REDUCE_INPUT_RECORDS, REDUCE_OUTPUT_RECORDS, TOTAL_LAUNCHED_MAPS,
		TOTAL_LAUNCHED_REDUCES, DATA_LOCAL_MAPS, NUM_FAILED_MAPS, NUM_FAILED_REDUCES} {
		if name == "" || strings.ToUpper(name) != name {
			t.Errorf("counter name %q", name)
		}
	}
}

func TestCallSafely(t *testing.T) {
	boom := errors.New("boom")
	if err := CallSafely(func() error { return boom }); err != boom {
		t.Errorf("error: %v", err)
	}
	if err := CallSafely(func() error { return nil }); err != nil {
		t.Errorf("nil: %v", err)
	}
	err := CallSafely(func() error { panic("at the disco") })
	var pe *PanicError
	if !errors.As(err, &pe) || err.Error() != "panic: at the disco" || pe.Value != "at the disco" {
		t.Errorf("panic: %v", err)
	}
	if !strings.Contains(string(pe.Stack), "TestCallSafely") {
		t.Error("PanicError.Stack does not show the panicking function")
	}
	if err := CallSafely(func() error { panic(io.ErrUnexpectedEOF) }); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("panic with an error: %v does not unwrap to it", err)
	}
	if err := CallSafely(func() error {
		var m map[string]int
		m["x"] = 1 // a runtime error
		return nil
	}); err == nil || !strings.HasPrefix(err.Error(), "panic: assignment to entry in nil map") {
		t.Errorf("runtime panic: %v", err)
	}
	if err := CallSafely(func() error { panic(nil) }); err == nil {
		t.Error("panic(nil) was not reported")
	}
}
