package builtin

// The TeraSort suite, as Hadoop's examples define it: teragen writes GenSort
// records, terasort sorts them, teravalidate checks the result.

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	"shoal.dev/shoal/job"
)

// GenSort record shape.
const (
	// TeraRecordLen is the length of a GenSort record, "\r\n" included.
	TeraRecordLen = 100
	// TeraKeyLen is the length of a GenSort record's key, its first bytes.
	TeraKeyLen = 10
	// teraLineLen is a record as TextInput reads it: without its "\n".
	teraLineLen = TeraRecordLen - 1
)

// Counters of the TeraSort jobs, added to the job's through
// job.CounterSource.
const (
	// CounterChecksum is the sum, as a wrapping uint64, of the CRC-32
	// (IEEE) of every 100-byte record: written by teragen, read by
	// teravalidate. The counter holds the sum's 64 bits as an int64, so it
	// may print negative; uint64(c) is the checksum, and teravalidate's
	// checksum parameter takes it in hex. The sum does not depend on the
	// records' order or on how they are split among tasks.
	CounterChecksum = "CHECKSUM"
	// CounterRows counts the records teragen wrote, or the well-formed
	// records teravalidate read.
	CounterRows = "ROWS"
)

// ErrNotValid is matched (errors.Is) by teravalidate's failure: its input
// is not a sorted sequence of GenSort records, or their checksum is not the
// one expected. The message states the first problem found.
var ErrNotValid = errors.New("output is not valid")

// hexUpper are GenSort's hex digits.
const hexUpper = "0123456789ABCDEF"

// splitmix64 is output k of the SplitMix64 generator seeded with 0, for
// state = (k+1) * 0x9e3779b97f4a7c15: a counter-based generator, so any
// row's random bits are computed directly.
func splitmix64(state uint64) uint64 {
	z := state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// rowRandom is row's 128 random bits: outputs 2*row and 2*row+1 of
// SplitMix64 seeded with 0.
func rowRandom(row uint64) (hi, lo uint64) {
	const golden = 0x9e3779b97f4a7c15
	return splitmix64((2*row + 1) * golden), splitmix64((2*row + 2) * golden)
}

// AppendGenSortRecord appends the 100-byte GenSort ASCII record of row to
// dst, laid out as GenSort's (and Hadoop's GenSort.generateAsciiRecord):
//
//   - bytes 0-9, the key: ten printable characters ' '..'~'. With (hi, lo)
//     the row's 128 random bits, key bytes 0-7 are the base-95 digits of hi,
//     least significant first, and bytes 8-9 the two lowest base-95 digits
//     of lo, each plus ' '.
//   - bytes 10-11: two spaces.
//   - bytes 12-43: the row number as 32 upper-case hex digits.
//   - bytes 44-45: two spaces.
//   - bytes 46-97: 52 filler characters, 13 groups of 4 copies of one
//     upper-case hex digit: digits 19 to 31 of the random 128-bit hi:lo
//     (the low 52 bits of lo, most significant first).
//   - bytes 98-99: "\r\n".
//
// GenSort draws the random bits from a 128-bit LCG; Shoal uses SplitMix64
// (rowRandom), so the keys are as uniform but not GenSort's. A record is a
// function of its row number alone, whatever the task that writes it.
func AppendGenSortRecord(dst []byte, row uint64) []byte {
	var rec [TeraRecordLen]byte
	genSortRecord(&rec, row)
	return append(dst, rec[:]...)
}

func genSortRecord(rec *[TeraRecordLen]byte, row uint64) {
	hi, lo := rowRandom(row)
	for i := range 8 {
		rec[i] = ' ' + byte(hi%95)
		hi /= 95
	}
	rec[8] = ' ' + byte(lo%95)
	rec[9] = ' ' + byte(lo/95%95)
	rec[10], rec[11] = ' ', ' '
	for i := range 16 { // the high 64 bits of the 128-bit row number
		rec[12+i] = '0'
	}
	for i := range 16 {
		rec[28+i] = hexUpper[row>>(60-4*i)&0xf]
	}
	rec[44], rec[45] = ' ', ' '
	for i := range 13 {
		d := hexUpper[lo>>(48-4*i)&0xf]
		rec[46+4*i], rec[47+4*i], rec[48+4*i], rec[49+4*i] = d, d, d, d
	}
	rec[98], rec[99] = '\r', '\n'
}

// teragen's choice of tasks: one per teraGenRowsPerTask rows (100 MB of
// records), at least 1 and at most teraGenMaxTasks.
const (
	teraGenRowsPerTask = 1_000_000
	teraGenMaxTasks    = 1000
)

func teraGenSpec() job.Spec {
	return job.Spec{
		Name:  "teragen",
		Usage: "generate rows 100-byte GenSort ASCII records, the input of terasort (a generator job: give it no input)",
		Params: []job.Param{
			{Name: "rows", Required: true, Usage: "how many records to write (a positive integer)"},
			{Name: "tasks", Default: "0", Usage: "how many map tasks, each writing one part-m file of an equal share of the rows; 0 chooses one per 1,000,000 rows (1 to 1000)"},
		},
		Build: buildTeraGen,
	}
}

func buildTeraGen(params map[string]string) (*job.Job, error) {
	rows, err := strconv.ParseInt(params["rows"], 10, 64)
	if err != nil || rows < 1 {
		return nil, fmt.Errorf("param rows: %q is not a positive integer", params["rows"])
	}
	tasks, err := strconv.ParseInt(params["tasks"], 10, 64)
	switch {
	case err != nil || tasks < 0:
		return nil, fmt.Errorf("param tasks: %q is not a non-negative integer", params["tasks"])
	case tasks == 0:
		tasks = min(max((rows+teraGenRowsPerTask-1)/teraGenRowsPerTask, 1), teraGenMaxTasks)
	case tasks > rows:
		return nil, fmt.Errorf("param tasks: %d tasks for %d rows: at most one task per row", tasks, rows)
	case tasks > int64(maxInt):
		return nil, fmt.Errorf("param tasks: %d tasks is too many", tasks)
	}
	return &job.Job{
		Generate: int(tasks),
		MapOnly:  true,
		Output:   job.RawOutput,
		NewMapper: func(job.TaskInfo) (job.Mapper, error) {
			return &teraGenMapper{rows: uint64(rows), tasks: uint64(tasks)}, nil
		},
	}, nil
}

const maxInt = int(^uint(0) >> 1)

// teraGenMapper writes the rows of its generator task: task n writes rows
// [n*rows/tasks, (n+1)*rows/tasks). It emits each record as (its key, the
// rest without the "\n"), which RawOutput writes back as the record. It is
// an Aborter, since one Map call writes a whole task's rows, and a
// CounterSource of CHECKSUM and ROWS.
type teraGenMapper struct {
	rows, tasks uint64
	rec         [TeraRecordLen]byte
	sum         uint64 // CHECKSUM
	written     uint64 // ROWS
	aborted     atomic.Bool
}

// teraGenAbortCheck is how many rows teragen writes between checks for an
// abort.
const teraGenAbortCheck = 4096

func (m *teraGenMapper) Map(key, _ []byte, out job.Emitter) error {
	n, err := strconv.ParseUint(string(key), 10, 64)
	if err != nil || n >= m.tasks {
		return job.Permanent(fmt.Errorf("teragen: generator key %s is not a task number below %d", quote(key), m.tasks))
	}
	start, end := taskRows(n, m.rows, m.tasks), taskRows(n+1, m.rows, m.tasks)
	for row := start; row < end; row++ {
		if (row-start)%teraGenAbortCheck == 0 && m.aborted.Load() {
			return errors.New("teragen: aborted")
		}
		genSortRecord(&m.rec, row)
		m.sum += uint64(crc32.ChecksumIEEE(m.rec[:]))
		if err := out.Emit(m.rec[:TeraKeyLen:TeraKeyLen], m.rec[TeraKeyLen:teraLineLen]); err != nil {
			return err
		}
		m.written++
	}
	return nil
}

// taskRows is the first row of task n of tasks sharing rows: n*rows/tasks,
// computed without overflow.
func taskRows(n, rows, tasks uint64) uint64 {
	hi, lo := bits.Mul64(n, rows)
	q, _ := bits.Div64(hi, lo, tasks) // n <= tasks, so q <= rows
	return q
}

// Abort makes a Map under way return soon.
func (m *teraGenMapper) Abort() { m.aborted.Store(true) }

// Counters returns CHECKSUM and ROWS of the rows written.
func (m *teraGenMapper) Counters() job.Counters {
	return job.Counters{CounterChecksum: int64(m.sum), CounterRows: int64(m.written)}
}

// TeraSort's sample, as Hadoop takes it: 100,000 keys from 10 splits.
const (
	teraSampleSplits   = 10
	teraSamplePerSplit = 10_000
)

func teraSortSpec() job.Spec {
	return job.Spec{
		Name:  "terasort",
		Usage: "sort 100-byte GenSort records (teragen's output) by their 10-byte key, then the rest: the part-r files in order hold the records sorted",
		Params: []job.Param{
			{Name: "splitpoints", Usage: "internal: the reducers' split points, hex of sorted 10-byte keys, one fewer than reducers; set at submission from a sample of the input, or used as given (no sample)"},
		},
		Build: buildTeraSort,
	}
}

func buildTeraSort(params map[string]string) (*job.Job, error) {
	points, err := hex.DecodeString(params["splitpoints"])
	switch {
	case err != nil:
		return nil, fmt.Errorf("param splitpoints: not hex: %w", err)
	case len(points)%TeraKeyLen != 0:
		return nil, fmt.Errorf("param splitpoints: %d bytes is not a whole number of %d-byte keys", len(points), TeraKeyLen)
	}
	for i := TeraKeyLen; i < len(points); i += TeraKeyLen {
		if bytes.Compare(points[i-TeraKeyLen:i], points[i:i+TeraKeyLen]) > 0 {
			return nil, fmt.Errorf("param splitpoints: key %d is smaller than key %d: not sorted", i/TeraKeyLen, i/TeraKeyLen-1)
		}
	}
	j := &job.Job{
		Input:       job.TextInput,
		Output:      job.RawOutput,
		Partitioner: rangePartitioner{points: points},
		NewMapper:   func(job.TaskInfo) (job.Mapper, error) { return teraSortMapper{}, nil },
		NewReducer:  func(job.TaskInfo) (job.Reducer, error) { return identityReducer{}, nil },
	}
	if params["splitpoints"] == "" {
		j.Prepare = prepareTeraSort
	}
	return j, nil
}

// teraSortMapper emits a record's line as (its 10-byte key, the rest of it,
// "\r" included): RawOutput writes the record back byte for byte. A line
// that is not 99 bytes long (100 with its "\n") fails the job (job.Permanent). A last line
// of 99 bytes with no "\n" cannot be told from a whole record: it gains
// one.
type teraSortMapper struct{}

func (teraSortMapper) Map(offset, line []byte, out job.Emitter) error {
	if len(line) != teraLineLen {
		return job.Permanent(fmt.Errorf("record at offset %s is %d bytes long without its \"\\n\", want %d: not a GenSort record", offset, len(line), teraLineLen))
	}
	return out.Emit(line[:TeraKeyLen:TeraKeyLen], line[TeraKeyLen:])
}

// identityReducer emits every pair it is given.
type identityReducer struct{}

func (identityReducer) Reduce(key []byte, values job.Values, out job.Emitter) error {
	for v, ok := values.Next(); ok; v, ok = values.Next() {
		if err := out.Emit(key, v); err != nil {
			return err
		}
	}
	return nil
}

// prepareTeraSort samples the input — the first 10,000 records of each of
// up to 10 splits, Hadoop's 100,000 keys — and returns as splitpoints the
// reducers-1 keys that cut the sorted sample into equal parts:
// splitPoints. One reducer needs none and samples nothing.
func prepareTeraSort(ctx context.Context, s job.Sampler, reducers int) (map[string]string, error) {
	if reducers <= 1 {
		return map[string]string{"splitpoints": ""}, nil
	}
	lines, err := s.Sample(ctx, teraSampleSplits, teraSamplePerSplit)
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	keys := make([][]byte, len(lines))
	for i, l := range lines {
		if len(l) != teraLineLen {
			return nil, fmt.Errorf("sample: record %d is %d bytes long without its \"\\n\", want %d: not GenSort records", i, len(l), teraLineLen)
		}
		keys[i] = l[:TeraKeyLen]
	}
	return map[string]string{"splitpoints": hex.EncodeToString(splitPoints(keys, reducers))}, nil
}

// splitPoints sorts keys and returns, concatenated, the reducers-1 keys
// at positions i*len(keys)/reducers for i in [1, reducers): each
// partition then gets an equal share of the sample. No keys give no split
// points.
func splitPoints(keys [][]byte, reducers int) []byte {
	if len(keys) == 0 || reducers <= 1 {
		return nil
	}
	slices.SortFunc(keys, bytes.Compare)
	points := make([]byte, 0, (reducers-1)*TeraKeyLen)
	for i := 1; i < reducers; i++ {
		points = append(points, keys[int(int64(i)*int64(len(keys))/int64(reducers))]...)
	}
	return points
}

// rangePartitioner is TeraSort's partitioner: it cuts the key space at
// sorted split points, so partition p holds only keys smaller than those
// of partition p+1, and the part files in order hold the keys in order.
//
// With n split points (points[0] <= ... <= points[n-1]) and c the number of
// them <= key (a binary search), the partition of key is c when there are
// n+1 partitions, as Prepare makes it: keys below points[0] go to 0, a key
// equal to points[i] to i+1 and above it. For another partition count
// (split points given by hand, or a runner that did not prepare) it is
// c*partitions/(n+1): the n+1 ranges are dealt out to the partitions in
// order, so the result is still in range and monotone — the output stays
// sorted, only less balanced, and with fewer ranges than partitions the
// top partitions stay empty. With no split points everything goes to
// partition 0. It depends on the key alone, so equal keys meet in
// one partition, where Shoal's sort orders them by value.
type rangePartitioner struct {
	points []byte // concatenated TeraKeyLen-byte keys, sorted
}

func (r rangePartitioner) Partition(key []byte, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	n := len(r.points) / TeraKeyLen
	lo, hi := 0, n // the answer c is in [lo, hi]
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if bytes.Compare(r.points[mid*TeraKeyLen:(mid+1)*TeraKeyLen], key) <= 0 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if n+1 == partitions {
		return lo
	}
	return int(uint64(lo) * uint64(partitions) / uint64(n+1))
}

func teraValidateSpec() job.Spec {
	return job.Spec{
		Name:  "teravalidate",
		Usage: "check terasort's output (its part-r files, in order): every record 100 bytes and the keys sorted; writes records and checksum, and fails on the first problem (runs 1 reducer)",
		Params: []job.Param{
			{Name: "checksum", Usage: "if set, the checksum the records must have: teragen's CHECKSUM counter, as hex of its 64 bits"},
		},
		Build: buildTeraValidate,
	}
}

// wantSum is teravalidate's checksum parameter: hex, as teragen's CHECKSUM
// counter prints and as Hadoop writes checksums. A parameter of decimal
// digits only may also be a decimal number someone copied from a raw
// counter (the JSON API shows counters as signed 64-bit numbers); dec holds
// that reading, which is accepted with a note in the report.
type wantSum struct {
	hex uint64
	dec *uint64
	raw string
}

func parseWantSum(s string) (wantSum, error) {
	w := wantSum{raw: s}
	h, herr := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"), 16, 64)
	w.hex = h
	if !strings.HasPrefix(s, "0x") && !strings.HasPrefix(s, "0X") {
		if d, err := strconv.ParseUint(s, 10, 64); err == nil {
			w.dec = &d
		} else if d, err := strconv.ParseInt(s, 10, 64); err == nil {
			u := uint64(d) // a negative counter: its 64 bits
			w.dec = &u
		}
	}
	if herr != nil && w.dec == nil {
		return wantSum{}, fmt.Errorf("param checksum: %q is not a 64-bit hex number (teragen's CHECKSUM counter, as `shoal job run` prints it)", s)
	}
	if herr != nil { // decimal only (a negative number)
		w.hex = *w.dec
	}
	return w, nil
}

func buildTeraValidate(params map[string]string) (*job.Job, error) {
	var want *wantSum
	if s := params["checksum"]; s != "" {
		w, err := parseWantSum(s)
		if err != nil {
			return nil, err
		}
		want = &w
	}
	return &job.Job{
		Input:           job.TextInput,
		DefaultReducers: 1,
		Partitioner:     job.PartitionerFunc(func([]byte, int) int { return 0 }),
		NewMapper: func(t job.TaskInfo) (job.Mapper, error) {
			return &teraValidateMapper{task: t.TaskID, file: t.InputFile}, nil
		},
		NewReducer: func(t job.TaskInfo) (job.Reducer, error) {
			if t.Partition != 0 {
				return nil, job.Permanent(fmt.Errorf("teravalidate runs one reducer, not partition %d: run it with 1 reducer", t.Partition))
			}
			return &teraValidateReducer{want: want}, nil
		},
		// Refuse more than one reducer at submission, before any task runs.
		Prepare: func(_ context.Context, _ job.Sampler, reducers int) (map[string]string, error) {
			if reducers != 1 {
				return nil, fmt.Errorf("teravalidate runs one reducer, not %d", reducers)
			}
			return nil, nil
		},
	}, nil
}

// teraValidateMapper checks one split and, when it ends, emits its summary
// as one pair: key its TaskID (zero-padded, so the reducer sees the splits
// in order), value
//
//	first-key-hex \t last-key-hex \t records \t checksum-hex \t problem
//
// over its well-formed records: the hex of the first and last keys (empty
// when there are none), their count in decimal, the sum of their CRC-32s
// in hex, and the split's first problem — a record that is not 99 bytes
// and a "\n", or a key smaller than the one before — empty if none. It
// does not allocate per record.
type teraValidateMapper struct {
	task, file  string
	first, last [TeraKeyLen]byte
	records     uint64
	sum         uint64
	problem     string
	rec         [TeraRecordLen]byte // the record being checked, "\n" included
}

func (m *teraValidateMapper) Map(offset, line []byte, _ job.Emitter) error {
	if len(line) != teraLineLen {
		if m.problem == "" {
			m.problem = fmt.Sprintf("%s offset %s: record is %d bytes long without its \"\\n\", want %d", m.file, offset, len(line), teraLineLen)
		}
		return nil
	}
	key := line[:TeraKeyLen]
	if m.records > 0 && bytes.Compare(key, m.last[:]) < 0 && m.problem == "" {
		m.problem = fmt.Sprintf("%s offset %s: misorder: key %q after %q", m.file, offset, key, m.last[:])
	}
	if m.records == 0 {
		m.first = [TeraKeyLen]byte(key)
	}
	m.last = [TeraKeyLen]byte(key)
	m.records++
	copy(m.rec[:], line)
	m.rec[teraLineLen] = '\n'
	m.sum += uint64(crc32.ChecksumIEEE(m.rec[:]))
	return nil
}

func (m *teraValidateMapper) Close(out job.Emitter) error {
	var first, last string
	if m.records > 0 {
		first, last = hex.EncodeToString(m.first[:]), hex.EncodeToString(m.last[:])
	}
	problem := strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, m.problem)
	return out.Emit([]byte(m.task), fmt.Appendf(nil, "%s\t%s\t%d\t%x\t%s", first, last, m.records, m.sum, problem))
}

// teraValidateMaxErrors is how many problems teravalidate's report lists.
const teraValidateMaxErrors = 20

// teraValidateReducer walks the split summaries in split order: it
// collects each split's problem, checks that each split's first key is not
// below the last key of the split before (splits with no records are
// skipped), and sums the record counts and checksums. At the end it writes
// the report — ("records", N), ("checksum", hex), then ("error", problem)
// for up to 20 problems — and fails permanently (job.Permanent) with ErrNotValid and the first problem
// if there is one, including a checksum other than the one wanted. It is a
// CounterSource of CHECKSUM and ROWS.
type teraValidateReducer struct {
	want     *wantSum
	records  uint64
	sum      uint64
	last     []byte // the last key of the last split with records
	lastTask string
	problems []string
}

func (r *teraValidateReducer) Reduce(task []byte, values job.Values, _ job.Emitter) error {
	for v, ok := values.Next(); ok; v, ok = values.Next() {
		if err := r.split(string(task), string(v)); err != nil {
			r.problems = append(r.problems, fmt.Sprintf("split %s: %v", task, err))
		}
	}
	return nil
}

// split takes in the summary of one split; its error is a malformed
// summary.
func (r *teraValidateReducer) split(task, summary string) error {
	f := strings.SplitN(summary, "\t", 5)
	if len(f) != 5 {
		return fmt.Errorf("malformed summary %q", summary)
	}
	first, err1 := hex.DecodeString(f[0])
	last, err2 := hex.DecodeString(f[1])
	records, err3 := strconv.ParseUint(f[2], 10, 64)
	sum, err4 := strconv.ParseUint(f[3], 16, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return fmt.Errorf("malformed summary %q: %w", summary, err)
	}
	if f[4] != "" {
		r.problems = append(r.problems, fmt.Sprintf("split %s: %s", task, f[4]))
	}
	if records > 0 {
		if r.last != nil && bytes.Compare(first, r.last) < 0 {
			r.problems = append(r.problems, fmt.Sprintf("split %s: misorder: its first key %q is below the last key %q of split %s", task, first, r.last, r.lastTask))
		}
		r.last, r.lastTask = last, task
	}
	r.records += records
	r.sum += sum
	return nil
}

func (r *teraValidateReducer) Close(out job.Emitter) error {
	var note string
	if w := r.want; w != nil && r.sum != w.hex {
		switch {
		case w.dec != nil && r.sum == *w.dec:
			note = fmt.Sprintf("the checksum parameter %s matches read as decimal; checksums are hex: %x", w.raw, r.sum)
		case w.dec != nil:
			r.problems = append(r.problems, fmt.Sprintf("checksum %x, want %x (or %x, if %s was meant as decimal): the records are not those expected", r.sum, w.hex, *w.dec, w.raw))
		default:
			r.problems = append(r.problems, fmt.Sprintf("checksum %x, want %x: the records are not those expected", r.sum, w.hex))
		}
	}
	if err := out.Emit([]byte("records"), strconv.AppendUint(nil, r.records, 10)); err != nil {
		return err
	}
	if err := out.Emit([]byte("checksum"), strconv.AppendUint(nil, r.sum, 16)); err != nil {
		return err
	}
	if note != "" {
		if err := out.Emit([]byte("note"), []byte(note)); err != nil {
			return err
		}
	}
	for _, p := range r.problems[:min(len(r.problems), teraValidateMaxErrors)] {
		if err := out.Emit([]byte("error"), []byte(p)); err != nil {
			return err
		}
	}
	switch len(r.problems) {
	case 0:
		return nil
	case 1:
		return job.Permanent(fmt.Errorf("%w: %s", ErrNotValid, r.problems[0]))
	}
	return job.Permanent(fmt.Errorf("%w: %s (and %d more problems)", ErrNotValid, r.problems[0], len(r.problems)-1))
}

// Counters returns CHECKSUM and ROWS of the records read.
func (r *teraValidateReducer) Counters() job.Counters {
	return job.Counters{CounterChecksum: int64(r.sum), CounterRows: int64(r.records)}
}
