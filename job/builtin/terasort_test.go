package builtin

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"shoal.dev/shoal/job"
)

// runPrepared runs the job name as `shoal job run --local` does: resolved
// with ResolvePrepared over a sampler of the inputs, then RunSequential.
// It returns the files written and the counters.
func runPrepared(t *testing.T, name string, params map[string]string, files []file, reducers int) (map[string]string, job.Counters, error) {
	t.Helper()
	ctx := context.Background()
	r := registry(t)
	j0, err := r.Resolve(name, params)
	if err != nil {
		return nil, nil, err
	}
	in := inputsOf(files)
	j, final, err := r.ResolvePrepared(ctx, name, params, job.NewSampler(in, j0.Input), reducers)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string]*memFile)
	c, err := job.RunSequential(ctx, j, "test", final, in, reducers, func(name string) (io.WriteCloser, error) {
		f := new(memFile)
		out[name] = f
		return f, nil
	})
	got := make(map[string]string)
	for name, f := range out {
		got[name] = f.String()
	}
	return got, c, err
}

func mustRunPrepared(t *testing.T, name string, params map[string]string, files []file, reducers int) (map[string]string, job.Counters) {
	t.Helper()
	got, c, err := runPrepared(t, name, params, files, reducers)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return got, c
}

// parts returns the files of out in name order, as inputs.
func parts(out map[string]string) []file {
	var fs []file
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range out {
			if !yield(n) {
				return
			}
		}
	}) {
		fs = append(fs, file{"/out/" + name, out[name]})
	}
	return fs
}

func concat(fs []file) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.data)
	}
	return b.String()
}

// records cuts data into 100-byte records.
func records(t *testing.T, data string) []string {
	t.Helper()
	if len(data)%TeraRecordLen != 0 {
		t.Fatalf("%d bytes is not a whole number of records", len(data))
	}
	var recs []string
	for i := 0; i < len(data); i += TeraRecordLen {
		recs = append(recs, data[i:i+TeraRecordLen])
	}
	return recs
}

// crcSum is the checksum of 100-byte records, computed independently.
func crcSum(recs []string) uint64 {
	var sum uint64
	for _, r := range recs {
		sum += uint64(crc32.Checksum([]byte(r), crc32.MakeTable(crc32.IEEE)))
	}
	return sum
}

// teragen runs teragen for rows in tasks and returns its part files.
func teragen(t *testing.T, rows, tasks int) ([]file, job.Counters) {
	t.Helper()
	out, c := mustRunPrepared(t, "teragen", map[string]string{"rows": strconv.Itoa(rows), "tasks": strconv.Itoa(tasks)}, nil, 0)
	return parts(out), c
}

func TestGenSortRecord(t *testing.T) {
	for _, row := range []uint64{0, 1, 2, 12345, 1<<40 + 7, 1<<64 - 1} {
		rec := AppendGenSortRecord([]byte("x"), row)[1:]
		if len(rec) != TeraRecordLen {
			t.Fatalf("row %d: %d bytes", row, len(rec))
		}
		for i, c := range rec[:TeraKeyLen] {
			if c < ' ' || c > '~' {
				t.Errorf("row %d: key byte %d is %q", row, i, c)
			}
		}
		if string(rec[10:12]) != "  " || string(rec[44:46]) != "  " || string(rec[98:]) != "\r\n" {
			t.Errorf("row %d: separators: %q", row, rec)
		}
		if got, want := string(rec[12:44]), fmt.Sprintf("%032X", row); got != want {
			t.Errorf("row %d: row id %s, want %s", row, got, want)
		}
		_, lo := rowRandom(row)
		filler := fmt.Sprintf("%013X", lo&(1<<52-1))
		for i := range 13 {
			if got, want := string(rec[46+4*i:50+4*i]), strings.Repeat(filler[i:i+1], 4); got != want {
				t.Errorf("row %d: filler group %d is %q, want %q", row, i, got, want)
			}
		}
		if !bytes.Equal(rec, AppendGenSortRecord(nil, row)) {
			t.Errorf("row %d: not deterministic", row)
		}
	}
	// Pinned: a change to the generator changes every TeraSort data set.
	want := map[uint64]string{
		0: "Cum8Lk[(C|  00000000000000000000000000000000  88889999EEEE6666AAAAAAAA1111BBBB999966665555FFFF4444\r\n",
		1: "3ZN RWSO$T  00000000000000000000000000000001  BBBBBBBB8888AAAA8888777722224444CCCC88881111EEEECCCC\r\n",
	}
	for row, w := range want {
		if got := string(AppendGenSortRecord(nil, row)); got != w {
			t.Errorf("row %d:\n got %q\nwant %q", row, got, w)
		}
	}
}

func TestTeraGen(t *testing.T) {
	const rows = 3000
	one, c1 := teragen(t, rows, 1)
	seven, c7 := teragen(t, rows, 7)
	if len(one) != 1 || len(seven) != 7 {
		t.Fatalf("%d and %d part files, want 1 and 7", len(one), len(seven))
	}
	if concat(one) != concat(seven) {
		t.Error("1 and 7 tasks write different records")
	}
	for n, f := range seven {
		if f.path != "/out/"+job.MapOutputName(n) {
			t.Errorf("part %d is %s", n, f.path)
		}
		if want := (n+1)*rows/7 - n*rows/7; len(f.data) != want*TeraRecordLen {
			t.Errorf("%s: %d bytes, want %d rows", f.path, len(f.data), want)
		}
	}
	var want bytes.Buffer
	for row := range uint64(rows) {
		want.Write(AppendGenSortRecord(nil, row))
	}
	if concat(one) != want.String() {
		t.Error("teragen's records are not AppendGenSortRecord's")
	}
	recs := records(t, concat(seven))
	sum := crcSum(recs)
	for _, c := range []job.Counters{c1, c7} {
		if uint64(c.Get(CounterChecksum)) != sum || c.Get(CounterRows) != rows || c.Get(job.MAP_OUTPUT_RECORDS) != rows {
			t.Errorf("counters %v, want checksum %d (%x)", c, int64(sum), sum)
		}
	}
	if c7.Get(job.TOTAL_LAUNCHED_MAPS) != 7 || c7.Get(job.MAP_INPUT_RECORDS) != 7 {
		t.Errorf("7 tasks: counters %v", c7)
	}
	keys := make(map[string]bool)
	for _, r := range recs {
		keys[r[:TeraKeyLen]] = true
	}
	if len(keys) < rows-1 {
		t.Errorf("%d distinct keys of %d", len(keys), rows)
	}

	// The choice of tasks, and parameter errors.
	r := registry(t)
	for rows, tasks := range map[string]int{"1": 1, "1000000": 1, "1000001": 2, "2500000": 3, "5000000000": 1000} {
		j, err := r.Resolve("teragen", map[string]string{"rows": rows})
		if err != nil || j.Generate != tasks || !j.MapOnly || j.Output != job.RawOutput {
			t.Errorf("rows %s: %+v, %v; want %d tasks", rows, j, err, tasks)
		}
	}
	for _, p := range []map[string]string{
		{}, {"rows": ""}, {"rows": "0"}, {"rows": "-5"}, {"rows": "1e6"},
		{"rows": "10", "tasks": "-1"}, {"rows": "10", "tasks": "x"}, {"rows": "10", "tasks": "11"},
	} {
		if _, err := r.Resolve("teragen", p); !errors.Is(err, job.ErrBadParam) {
			t.Errorf("%v: %v", p, err)
		}
	}
	if _, _, err := runPrepared(t, "teragen", map[string]string{"rows": "10"}, []file{{"/in", "x\n"}}, 0); err == nil {
		t.Error("teragen ran on an input")
	}
}

func TestTaskRows(t *testing.T) {
	// Shares cover the rows exactly, without overflow for huge counts.
	for _, tt := range []struct{ rows, tasks uint64 }{{10, 3}, {7, 7}, {1 << 62, 1000}, {1<<64 - 1, 999}} {
		var total uint64
		for n := range tt.tasks {
			a, b := taskRows(n, tt.rows, tt.tasks), taskRows(n+1, tt.rows, tt.tasks)
			if b < a || b-a > tt.rows/tt.tasks+1 {
				t.Errorf("%v: task %d has rows [%d, %d)", tt, n, a, b)
			}
			total += b - a
		}
		if total != tt.rows || taskRows(0, tt.rows, tt.tasks) != 0 || taskRows(tt.tasks, tt.rows, tt.tasks) != tt.rows {
			t.Errorf("%v: shares cover %d rows", tt, total)
		}
	}
}

func TestTeraGenAbort(t *testing.T) {
	j, err := registry(t).Resolve("teragen", map[string]string{"rows": "1000000000", "tasks": "1"})
	if err != nil {
		t.Fatal(err)
	}
	m, _ := j.NewMapper(job.TaskInfo{})
	emitted := 0
	err = m.Map([]byte("0"), nil, job.EmitterFunc(func(k, v []byte) error {
		if emitted++; emitted == 10 {
			m.(job.Aborter).Abort()
		}
		return nil
	}))
	if err == nil || emitted > 2*teraGenAbortCheck {
		t.Errorf("aborted after %d rows: %v", emitted, err)
	}
	if err := m.Map([]byte("1"), nil, job.EmitterFunc(func(k, v []byte) error { return nil })); err == nil {
		t.Error("task 1 of 1 accepted")
	}
}

// sortedRecords is recs sorted bytewise, concatenated.
func sortedRecords(recs []string) string {
	s := slices.Clone(recs)
	slices.Sort(s)
	return strings.Join(s, "")
}

func TestTeraSort(t *testing.T) {
	in, _ := teragen(t, 5000, 4)
	// Add ties: records with the key of another and a different rest, and
	// an exact duplicate, to a new input file.
	recs := records(t, concat(in))
	dup := recs[7][:TeraKeyLen] + strings.Replace(recs[100][TeraKeyLen:], "0", "Z", 1)
	extra := recs[7] + dup + recs[3000] + recs[7][:TeraKeyLen] + recs[9][TeraKeyLen:]
	in = append(in, file{"/extra", extra})
	recs = append(recs, records(t, extra)...)
	want := sortedRecords(recs)

	if sortPath, err := exec.LookPath("sort"); err == nil {
		cmd := exec.Command(sortPath)
		cmd.Env = []string{"LC_ALL=C"}
		cmd.Stdin = strings.NewReader(strings.Join(recs, ""))
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != want {
			t.Fatal("LC_ALL=C sort disagrees with a bytewise sort of the records")
		}
	}

	for _, reducers := range []int{1, 3, 7} {
		out, c := mustRunPrepared(t, "terasort", nil, in, reducers)
		ps := parts(out)
		if len(ps) != reducers {
			t.Fatalf("%d reducers: %d parts", reducers, len(ps))
		}
		if concat(ps) != want {
			t.Errorf("%d reducers: the parts in order are not the sorted records", reducers)
		}
		var prevLast string
		for p, f := range ps {
			if f.path != "/out/"+job.ReduceOutputName(p) {
				t.Errorf("part %d is %s", p, f.path)
			}
			rs := records(t, f.data)
			if !slices.IsSorted(rs) {
				t.Errorf("%d reducers: %s is not sorted", reducers, f.path)
			}
			if len(rs) == 0 {
				t.Errorf("%d reducers: %s is empty", reducers, f.path)
				continue
			}
			if prevLast != "" && rs[0][:TeraKeyLen] <= prevLast {
				t.Errorf("%d reducers: %s starts with key %q, not above %q", reducers, f.path, rs[0][:TeraKeyLen], prevLast)
			}
			prevLast = rs[len(rs)-1][:TeraKeyLen]
		}
		if c.Get(job.REDUCE_OUTPUT_RECORDS) != int64(len(recs)) {
			t.Errorf("%d reducers: counters %v", reducers, c)
		}
	}
}

func TestTeraSortPrepare(t *testing.T) {
	ctx := context.Background()
	r := registry(t)
	in, _ := teragen(t, 1000, 3)
	inputs := inputsOf(in)
	j, params, err := r.ResolvePrepared(ctx, "terasort", nil, job.NewSampler(inputs, job.TextInput), 4)
	if err != nil {
		t.Fatal(err)
	}
	points, _ := hex.DecodeString(params["splitpoints"])
	if len(points) != 3*TeraKeyLen || j.Prepare != nil {
		t.Errorf("splitpoints %q; prepare %v", params["splitpoints"], j.Prepare != nil)
	}
	// One reducer samples nothing.
	fail := job.SamplerFunc(func(context.Context, int, int) ([][]byte, error) { return nil, errors.New("sampled") })
	if _, params, err := r.ResolvePrepared(ctx, "terasort", nil, fail, 1); err != nil || params["splitpoints"] != "" {
		t.Errorf("1 reducer: %v, %v", params, err)
	}
	if _, _, err := r.ResolvePrepared(ctx, "terasort", nil, fail, 2); err == nil || !strings.Contains(err.Error(), "terasort: prepare: sample: sampled") {
		t.Errorf("sample error: %v", err)
	}
	// Given split points are used as they are: nothing is sampled.
	given := map[string]string{"splitpoints": hex.EncodeToString([]byte("MMMMMMMMMM"))}
	if _, params, err := r.ResolvePrepared(ctx, "terasort", given, fail, 2); err != nil || params["splitpoints"] != given["splitpoints"] {
		t.Errorf("given split points: %v, %v", params, err)
	}
	// Input that is not GenSort records fails at the sample.
	bad := job.NewSampler(inputsOf([]file{{"/x", "short line\n"}}), job.TextInput)
	if _, _, err := r.ResolvePrepared(ctx, "terasort", nil, bad, 2); err == nil || !strings.Contains(err.Error(), "record 0 is 10 bytes long") {
		t.Errorf("bad sample: %v", err)
	}
	// An empty input: no split points, every part empty.
	out, _ := mustRunPrepared(t, "terasort", nil, []file{{"/e", ""}}, 3)
	if len(out) != 3 || concat(parts(out)) != "" {
		t.Errorf("empty input: %q", out)
	}
	for _, p := range []string{"zz", "00", strings.Repeat("ff", 10) + strings.Repeat("00", 10)} {
		if _, err := r.Resolve("terasort", map[string]string{"splitpoints": p}); !errors.Is(err, job.ErrBadParam) {
			t.Errorf("splitpoints %q: %v", p, err)
		}
	}
}

func TestTeraSortRejectsBadRecords(t *testing.T) {
	good := string(AppendGenSortRecord(nil, 1))
	for _, tt := range []struct {
		data, want string
	}{
		{good + "short\n", "record at offset 100 is 5 bytes long"},
		{good + good[:99] + "x\n", "record at offset 100 is 100 bytes long"},
		{"\n" + good, "record at offset 0 is 0 bytes long"},
	} {
		_, _, err := runPrepared(t, "terasort", nil, []file{{"/in", tt.data}}, 1)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "/in") {
			t.Errorf("%q: %v, want %q", tt.data, err, tt.want)
		}
	}
}

// key10 pads s to a 10-byte key.
func key10(s string) []byte { return []byte(fmt.Sprintf("%-10s", s)) }

func TestRangePartitioner(t *testing.T) {
	rp := rangePartitioner{points: slices.Concat(key10("b"), key10("d"), key10("d"), key10("f"))}
	// 4 split points, 5 partitions: the count of points <= key.
	for key, want := range map[string]int{
		"a": 0, "b": 1, "c": 1, "d": 3, "e": 3, "f": 4, "g": 4,
	} {
		if got := rp.Partition(key10(key), 5); got != want {
			t.Errorf("Partition(%q, 5) = %d, want %d", key, got, want)
		}
	}
	if got := rp.Partition([]byte("b"), 5); got != 0 { // "b" < "b         "
		t.Errorf("short key: %d", got)
	}
	// Other partition counts: in range and monotone.
	var keys [][]byte
	for c := byte(' '); c <= '~'; c++ {
		keys = append(keys, key10(string([]byte{c})), key10(string([]byte{c, c})))
	}
	slices.SortFunc(keys, bytes.Compare)
	for _, parts := range []int{1, 2, 3, 4, 6, 100} {
		prev := 0
		for _, k := range keys {
			p := rp.Partition(k, parts)
			if p < 0 || p >= parts || p < prev {
				t.Errorf("%d partitions: key %q to %d after %d", parts, k, p, prev)
			}
			prev = p
		}
		// The 5 ranges are dealt out in order: the top one, c = 4, to
		// 4*parts/5, the top partition when parts <= 5.
		if rp.Partition(key10("a"), parts) != 0 || rp.Partition(key10("z"), parts) != 4*parts/5 {
			t.Errorf("%d partitions: ends at %d and %d", parts, rp.Partition(key10("a"), parts), rp.Partition(key10("z"), parts))
		}
	}
	if (rangePartitioner{}).Partition(key10("z"), 8) != 0 {
		t.Error("no split points: not partition 0")
	}
	k := key10("c")
	if a := testing.AllocsPerRun(100, func() { rp.Partition(k, 5) }); a != 0 {
		t.Errorf("Partition allocates %v times", a)
	}
}

func TestRangePartitionerBalance(t *testing.T) {
	const (
		n          = 100_000
		partitions = 10
	)
	// Split points from a sample of other rows, taken as Prepare takes it.
	sampler := job.SamplerFunc(func(_ context.Context, splits, perSplit int) ([][]byte, error) {
		if splits != 10 || perSplit != 10_000 {
			t.Errorf("sampled %d splits of %d", splits, perSplit)
		}
		var lines [][]byte
		for row := range uint64(splits * perSplit) {
			rec := AppendGenSortRecord(nil, 1<<32+row)
			lines = append(lines, rec[:teraLineLen])
		}
		return lines, nil
	})
	params, err := prepareTeraSort(context.Background(), sampler, partitions)
	if err != nil {
		t.Fatal(err)
	}
	j, err := registry(t).Resolve("terasort", params)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int, partitions)
	var rec [TeraRecordLen]byte
	for row := range uint64(n) {
		genSortRecord(&rec, row)
		counts[j.Partitioner.Partition(rec[:TeraKeyLen], partitions)]++
	}
	mean := n / partitions
	if m := slices.Max(counts); float64(m) > 1.3*float64(mean) {
		t.Errorf("partition sizes %v: max %d > 1.3 × mean %d", counts, m, mean)
	}
	t.Logf("partition sizes %v", counts)
}

func TestTeraValidate(t *testing.T) {
	gen, gc := teragen(t, 4000, 3)
	sorted, _ := mustRunPrepared(t, "terasort", nil, gen, 3)
	ps := parts(sorted)
	sum := uint64(gc.Get(CounterChecksum))
	want := fmt.Sprintf("records\t4000\nchecksum\t%x\n", sum)

	for name, params := range map[string]map[string]string{
		"no checksum": nil,
		"checksum":    {"checksum": fmt.Sprintf("%x", sum)},
		"0x checksum": {"checksum": fmt.Sprintf("0x%016X", sum)},
	} {
		out, c := mustRunPrepared(t, "teravalidate", params, ps, 0)
		if len(out) != 1 || out["part-r-00000"] != want {
			t.Errorf("%s: report %q, want %q", name, out, want)
		}
		if c.Get(CounterChecksum) != gc.Get(CounterChecksum) || c.Get(CounterRows) != 4000 {
			t.Errorf("%s: counters %v; teragen's checksum %d", name, c, gc.Get(CounterChecksum))
		}
	}
	// The checksum as a decimal number (the JSON API's signed counter, or
	// its unsigned value): accepted, with a note in hex.
	for _, dec := range []string{fmt.Sprint(sum), fmt.Sprint(int64(sum))} {
		out, _ := mustRunPrepared(t, "teravalidate", map[string]string{"checksum": dec}, ps, 0)
		note := fmt.Sprintf("note\tthe checksum parameter %s matches read as decimal; checksums are hex: %x\n", dec, sum)
		if out["part-r-00000"] != want+note {
			t.Errorf("decimal checksum %s: report %q, want %q", dec, out["part-r-00000"], want+note)
		}
	}
	// A wrong decimal-looking checksum: both readings shown in hex.
	wrongDec := fmt.Sprint(sum + 1)
	if _, _, err := runPrepared(t, "teravalidate", map[string]string{"checksum": wrongDec}, ps, 1); err == nil ||
		!strings.Contains(err.Error(), fmt.Sprintf("checksum %x, want ", sum)) || !strings.Contains(err.Error(), fmt.Sprintf("(or %x, if %s was meant as decimal)", sum+1, wrongDec)) {
		t.Errorf("wrong decimal checksum: %v", err)
	}
	// Empty splits are fine, wherever they are.
	withEmpty := slices.Concat([]file{{"/e0", ""}}, ps[:2], []file{{"/e1", ""}}, ps[2:], []file{{"/e2", ""}})
	if out, _ := mustRunPrepared(t, "teravalidate", nil, withEmpty, 1); out["part-r-00000"] != want {
		t.Errorf("empty splits: report %q", out["part-r-00000"])
	}
	if out, _ := mustRunPrepared(t, "teravalidate", nil, nil, 1); out["part-r-00000"] != "records\t0\nchecksum\t0\n" {
		t.Errorf("no input: report %q", out["part-r-00000"])
	}

	// Failures, each with its reason.
	recs := records(t, ps[1].data)
	swapped := slices.Clone(recs)
	swapped[10], swapped[20] = swapped[20], swapped[10]
	badChecksum := fmt.Sprintf("%x", sum+1)
	for _, tt := range []struct {
		name   string
		files  []file
		params map[string]string
		want   []string
	}{
		{
			name:  "swapped records",
			files: []file{ps[0], {"/out/part-r-00001", strings.Join(swapped, "")}, ps[2]},
			want:  []string{"split m-000001: /out/part-r-00001 offset 1100: misorder: key ", " after "},
		},
		{
			name:  "swapped parts",
			files: []file{ps[0], ps[2], ps[1]},
			want:  []string{"split m-000002: misorder: its first key ", "below the last key ", " of split m-000001"},
		},
		{
			name:  "truncated",
			files: []file{ps[0], ps[1], {ps[2].path, ps[2].data[:len(ps[2].data)-43]}},
			want: []string{fmt.Sprintf("split m-000002: /out/part-r-00002 offset %d: record is 57 bytes long without its \"\\n\", want 99",
				len(ps[2].data)-TeraRecordLen)},
		},
		{
			name:   "wrong checksum",
			files:  ps,
			params: map[string]string{"checksum": badChecksum},
			want:   []string{fmt.Sprintf("checksum %x, want %s", sum, badChecksum)},
		},
		{
			name:  "two problems",
			files: []file{ps[0], {"/out/part-r-00001", strings.Join(swapped, "")}, {"/x", "short\n"}},
			want:  []string{"misorder", "(and 1 more problems)"},
		},
	} {
		_, _, err := runPrepared(t, "teravalidate", tt.params, tt.files, 1)
		if !errors.Is(err, ErrNotValid) || !job.IsPermanent(err) {
			t.Errorf("%s: %v (permanent %v), want a permanent ErrNotValid", tt.name, err, job.IsPermanent(err))
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", tt.name, err, w)
			}
		}
	}

	// One reducer only; a bad checksum parameter.
	if _, _, err := runPrepared(t, "teravalidate", nil, ps, 2); err == nil || !strings.Contains(err.Error(), "teravalidate: prepare: teravalidate runs one reducer, not 2") {
		t.Errorf("2 reducers, prepared: %v", err)
	}
	j, err := registry(t).Resolve("teravalidate", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = job.RunSequential(context.Background(), j, "t", map[string]string{"checksum": ""}, inputsOf(ps), 2,
		func(string) (io.WriteCloser, error) { return new(memFile), nil })
	if err == nil || !strings.Contains(err.Error(), "run it with 1 reducer") {
		t.Errorf("2 reducers, not prepared: %v", err)
	}
	if _, err := registry(t).Resolve("teravalidate", map[string]string{"checksum": "xyz"}); !errors.Is(err, job.ErrBadParam) {
		t.Errorf("bad checksum param: %v", err)
	}
}

func TestTeraHotPathsDoNotAllocate(t *testing.T) {
	rec := AppendGenSortRecord(nil, 42)
	line, offset := rec[:teraLineLen], []byte("4200")
	discard := job.EmitterFunc(func(k, v []byte) error { return nil })
	if a := testing.AllocsPerRun(100, func() { _ = teraSortMapper{}.Map(offset, line, discard) }); a != 0 {
		t.Errorf("terasort Map allocates %v times", a)
	}
	vm := &teraValidateMapper{task: "m-000000", file: "/f"}
	if a := testing.AllocsPerRun(100, func() { _ = vm.Map(offset, line, discard) }); a != 0 {
		t.Errorf("teravalidate Map allocates %v times", a)
	}
	gm := &teraGenMapper{rows: 1 << 20, tasks: 1 << 10} // 1024 rows a task
	if a := testing.AllocsPerRun(10, func() { _ = gm.Map([]byte("5"), nil, discard) }); a > 1 {
		t.Errorf("teragen Map of 1024 rows allocates %v times", a)
	}
}

func TestTeraValidateReport(t *testing.T) {
	r := &teraValidateReducer{want: &wantSum{hex: 0x99, raw: "99"}}
	summaries := map[string][]string{
		"m-000000": {"61616161616161616161\t62626262626262626262\t2\t10\t"},
		"m-000001": {"\t\t0\t0\t"},
		"m-000002": {"61616161616161616161\t63636363636363636363\t3\t20\t/f offset 100: misorder: x"},
		"m-000003": {"garbage"},
	}
	for _, task := range slices.Sorted(func(yield func(string) bool) {
		for k := range summaries {
			if !yield(k) {
				return
			}
		}
	}) {
		var vs [][]byte
		for _, v := range summaries[task] {
			vs = append(vs, []byte(v))
		}
		if err := r.Reduce([]byte(task), &sliceValues{vs}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var report []string
	err := r.Close(job.EmitterFunc(func(k, v []byte) error {
		report = append(report, string(k)+"\t"+string(v))
		return nil
	}))
	wantReport := []string{
		"records\t5",
		"checksum\t30",
		"error\tsplit m-000002: /f offset 100: misorder: x",
		"error\t" + `split m-000002: misorder: its first key "aaaaaaaaaa" is below the last key "bbbbbbbbbb" of split m-000000`,
		"error\t" + `split m-000003: malformed summary "garbage"`,
		"error\tchecksum 30, want 99: the records are not those expected",
	}
	if !slices.Equal(report, wantReport) {
		t.Errorf("report:\n%s\nwant:\n%s", strings.Join(report, "\n"), strings.Join(wantReport, "\n"))
	}
	if !errors.Is(err, ErrNotValid) || err.Error() != "output is not valid: split m-000002: /f offset 100: misorder: x (and 3 more problems)" {
		t.Errorf("error %v", err)
	}
	if c := r.Counters(); c.Get(CounterRows) != 5 || c.Get(CounterChecksum) != 0x30 {
		t.Errorf("counters %v", c)
	}
}
