// Package builtin holds Shoal's built-in jobs, defined as Hadoop's examples
// define them, and GenerateText, a corpus generator for demos and
// benchmarks. Register adds the jobs to a job.Registry:
//
//   - wordcount: counts words (runs of non-ASCII-whitespace bytes).
//   - grep: counts the matches of a regular expression (or of one of its
//     groups).
//   - invertedindex: lists, for each word, the input files it occurs in.
//   - distinct: the distinct lines of the input.
//   - sum: sums the decimal int64 values of each key of key<TAB>value
//     input.
//   - teragen, terasort, teravalidate: Hadoop's TeraSort suite. teragen
//     writes 100-byte GenSort records (a generator job), terasort sorts
//     them into range partitions cut at split points sampled at
//     submission, teravalidate checks the sorted output and its checksum.
//
// Mappers emit slices of their input line and reducers format numbers into
// a reused buffer: the hot paths do not allocate per record. Only
// wordcount combines in its mapper (a bounded table of counts, see
// wordCountMapper); the others leave combining to the shuffle's combiner.
package builtin

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"shoal.dev/shoal/job"
)

// Register adds the built-in jobs to r. It panics if one of their names is
// already registered: that is a wiring mistake, found at startup.
func Register(r *job.Registry) {
	for _, s := range []job.Spec{
		wordCountSpec(), grepSpec(), invertedIndexSpec(), distinctSpec(), sumSpec(),
		teraGenSpec(), teraSortSpec(), teraValidateSpec(),
	} {
		if err := r.Register(s); err != nil {
			panic(fmt.Sprintf("builtin: %v", err))
		}
	}
}

func wordCountSpec() job.Spec {
	return job.Spec{
		Name:  "wordcount",
		Usage: "count each word (a run of bytes between ASCII whitespace) of text input",
		Build: func(map[string]string) (*job.Job, error) {
			return &job.Job{
				Input:       job.TextInput,
				PackInputs:  true,
				NewMapper:   newWordCountMapper,
				NewCombiner: newSumReducer,
				NewReducer:  newSumReducer,
			}, nil
		},
	}
}

// wordCountMapper counts the words of its task's lines in a hash table
// (in-mapper combining) and emits (word, count) pairs when the table is
// full and at the end of the task: the shuffle then sorts one record per
// distinct word and flush instead of one per word, which was most of a
// wordcount's time. The table (a wcTable) holds at most wcMaxWords words and
// wcMaxBytes bytes of them, so a task's memory stays bounded whatever the
// vocabulary; the shuffle's combiner adds up what several flushes emit.
type wordCountMapper struct {
	table *wcTable
	buf   []byte
}

// The bounds of a wordcount mapper's table: 4 MB of words (or one longer
// word alone) and 4 MB of slots (16 bytes each, at most half of them used),
// ~8 MB a task at the most.
const (
	wcMaxWords = 1 << 17
	wcMaxBytes = 4 << 20
)

func newWordCountMapper(job.TaskInfo) (job.Mapper, error) {
	return &wordCountMapper{table: newWCTable()}, nil
}

func (m *wordCountMapper) Map(_, line []byte, out job.Emitter) error {
	for start, end := nextWord(line, 0); start < end; start, end = nextWord(line, end) {
		w := line[start:end]
		data, h := m.table.key(w, line[start:])
		if err := m.add(w, data, h, out); err != nil {
			return err
		}
	}
	return nil
}

// Close emits every word of the table with its count and empties it (it is
// also the flush of a full table).
func (m *wordCountMapper) Close(out job.Emitter) error {
	var err error
	m.buf, err = m.table.emit(out, m.buf)
	return err
}

// asciiSpace marks the bytes bytes.Fields splits ASCII text at.
var asciiSpace = [256]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// nextWord returns the bounds of the first word of line at or after i:
// a maximal run of bytes that are not ASCII whitespace. start == end ==
// len(line) when there is none. Unlike bytes.Fields, Unicode spaces (such as
// U+00A0) do not split words: words are bytes, whatever their encoding.
func nextWord(line []byte, i int) (start, end int) {
	for i < len(line) && asciiSpace[line[i]] {
		i++
	}
	start = i
	for i < len(line) && !asciiSpace[line[i]] {
		i++
	}
	return start, i
}

// sumReducer sums decimal int64 values; it is the combiner and reducer of
// wordcount, grep and sum.
type sumReducer struct {
	buf []byte
}

func newSumReducer(job.TaskInfo) (job.Reducer, error) { return &sumReducer{}, nil }

func (s *sumReducer) Reduce(key []byte, values job.Values, out job.Emitter) error {
	var total int64
	for {
		v, ok := values.Next()
		if !ok {
			break
		}
		n, ok := parseInt64(v)
		if !ok {
			return job.Permanent(fmt.Errorf("key %s: bad value %s: want a decimal int64", quote(key), quote(v)))
		}
		if n > 0 && total > maxInt64-n || n < 0 && total < minInt64-n {
			return job.Permanent(fmt.Errorf("key %s: sum overflows int64", quote(key)))
		}
		total += n
	}
	s.buf = strconv.AppendInt(s.buf[:0], total, 10)
	return out.Emit(key, s.buf)
}

const (
	maxInt64 = 1<<63 - 1
	minInt64 = -1 << 63
)

// parseInt64 parses a decimal int64 with an optional sign, surrounding
// whitespace trimmed, without allocating.
func parseInt64(b []byte) (int64, bool) {
	b = bytes.TrimSpace(b)
	neg := false
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) == 0 {
		return 0, false
	}
	limit := uint64(maxInt64)
	if neg {
		limit++
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if u > (limit-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	if neg {
		return -int64(u), true // -int64(1<<63) is minInt64
	}
	return int64(u), true
}

// quote quotes b for an error message, cut to 64 bytes: job errors travel
// in small gossip records.
func quote(b []byte) string {
	const maxQuoted = 64
	if len(b) > maxQuoted {
		return strconv.Quote(string(b[:maxQuoted])) + "..."
	}
	return strconv.Quote(string(b))
}

func grepSpec() job.Spec {
	return job.Spec{
		Name:  "grep",
		Usage: "count the matches of a regular expression in text input",
		Params: []job.Param{
			{Name: "pattern", Required: true, Usage: "the regular expression (Go RE2 syntax); every match in every line counts"},
			{Name: "group", Default: "0", Usage: "count this submatch group (number or name) instead of the whole match"},
		},
		Build: buildGrep,
	}
}

func buildGrep(params map[string]string) (*job.Job, error) {
	pattern := params["pattern"]
	if pattern == "" {
		return nil, fmt.Errorf("param pattern: must not be empty")
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("param pattern: bad regular expression: %w", err)
	}
	g := params["group"]
	group, err := strconv.Atoi(g)
	if err != nil {
		if group = re.SubexpIndex(g); group < 0 {
			return nil, fmt.Errorf("param group: %q is neither a group number nor a group name of the pattern", g)
		}
	}
	if group < 0 || group > re.NumSubexp() {
		return nil, fmt.Errorf("param group: %d is out of range: the pattern has %d groups", group, re.NumSubexp())
	}
	return &job.Job{
		Input:      job.TextInput,
		PackInputs: true,
		NewMapper: func(job.TaskInfo) (job.Mapper, error) {
			return &grepMapper{re: re, group: group, one: []byte("1")}, nil
		},
		NewCombiner: newSumReducer,
		NewReducer:  newSumReducer,
	}, nil
}

// grepMapper emits (match, "1") for each match of re in a line, or for each
// match of its group when group > 0 (a group that did not take part in a
// match emits nothing).
type grepMapper struct {
	re    *regexp.Regexp // safe for concurrent use
	group int
	one   []byte
}

func (m *grepMapper) Map(_, line []byte, out job.Emitter) error {
	if m.group == 0 {
		for _, loc := range m.re.FindAllIndex(line, -1) {
			if err := out.Emit(line[loc[0]:loc[1]:loc[1]], m.one); err != nil {
				return err
			}
		}
		return nil
	}
	for _, loc := range m.re.FindAllSubmatchIndex(line, -1) {
		start, end := loc[2*m.group], loc[2*m.group+1]
		if start < 0 {
			continue
		}
		if err := out.Emit(line[start:end:end], m.one); err != nil {
			return err
		}
	}
	return nil
}

func invertedIndexSpec() job.Spec {
	return job.Spec{
		Name:  "invertedindex",
		Usage: "list, for each word of text input, the input files it occurs in (sorted, joined by commas)",
		Build: func(map[string]string) (*job.Job, error) {
			return &job.Job{
				Input: job.TextInput,
				NewMapper: func(t job.TaskInfo) (job.Mapper, error) {
					return &indexMapper{file: []byte(t.InputFile)}, nil
				},
				NewCombiner: func(job.TaskInfo) (job.Reducer, error) { return &uniqueReducer{}, nil },
				NewReducer:  func(job.TaskInfo) (job.Reducer, error) { return &uniqueReducer{join: true}, nil },
			}, nil
		},
	}
}

// indexMapper emits (word, file) once for each distinct word of a line.
type indexMapper struct {
	file  []byte
	words [][]byte // reused
}

func (m *indexMapper) Map(_, line []byte, out job.Emitter) error {
	m.words = m.words[:0]
	for start, end := nextWord(line, 0); start < end; start, end = nextWord(line, end) {
		m.words = append(m.words, line[start:end:end])
	}
	slices.SortFunc(m.words, bytes.Compare)
	for i, w := range m.words {
		if i > 0 && bytes.Equal(w, m.words[i-1]) {
			continue
		}
		if err := out.Emit(w, m.file); err != nil {
			return err
		}
	}
	return nil
}

// uniqueReducer emits the distinct values of a key in sorted order: one
// pair per value (the invertedindex combiner), or, with join, one pair
// whose value joins them with commas (the reducer). It does not rely on the
// values' order.
type uniqueReducer struct {
	join  bool
	arena []byte   // the group's values, reused
	ends  []int    // end of each value in arena, reused
	vals  [][]byte // reused
	buf   []byte   // reused
}

func (u *uniqueReducer) Reduce(key []byte, values job.Values, out job.Emitter) error {
	u.arena, u.ends, u.vals = u.arena[:0], u.ends[:0], u.vals[:0]
	for {
		v, ok := values.Next()
		if !ok {
			break
		}
		u.arena = append(u.arena, v...)
		u.ends = append(u.ends, len(u.arena))
	}
	start := 0
	for _, end := range u.ends {
		u.vals = append(u.vals, u.arena[start:end:end])
		start = end
	}
	slices.SortFunc(u.vals, bytes.Compare)
	u.vals = slices.CompactFunc(u.vals, bytes.Equal)
	if !u.join {
		for _, v := range u.vals {
			if err := out.Emit(key, v); err != nil {
				return err
			}
		}
		return nil
	}
	u.buf = u.buf[:0]
	for i, v := range u.vals {
		if i > 0 {
			u.buf = append(u.buf, ',')
		}
		u.buf = append(u.buf, v...)
	}
	return out.Emit(key, u.buf)
}

func distinctSpec() job.Spec {
	return job.Spec{
		Name:  "distinct",
		Usage: "output each distinct line of text input once, sorted",
		Build: func(map[string]string) (*job.Job, error) {
			once := func(job.TaskInfo) (job.Reducer, error) {
				return job.ReducerFunc(func(key []byte, _ job.Values, out job.Emitter) error {
					return out.Emit(key, nil)
				}), nil
			}
			return &job.Job{
				Input:      job.TextInput,
				PackInputs: true,
				NewMapper: func(job.TaskInfo) (job.Mapper, error) {
					return job.MapperFunc(func(_, line []byte, out job.Emitter) error {
						return out.Emit(line, nil)
					}), nil
				},
				NewCombiner: once,
				NewReducer:  once,
			}, nil
		},
	}
}

func sumSpec() job.Spec {
	return job.Spec{
		Name:  "sum",
		Usage: "sum the decimal int64 values of each key of key<TAB>value input (blank lines skipped)",
		Build: func(map[string]string) (*job.Job, error) {
			return &job.Job{
				Input:       job.KeyValueInput,
				PackInputs:  true,
				NewMapper:   func(job.TaskInfo) (job.Mapper, error) { return &sumMapper{}, nil },
				NewCombiner: newSumReducer,
				NewReducer:  newSumReducer,
			}, nil
		},
	}
}

// sumMapper checks that a value is a decimal int64 and emits (key, value)
// with the value in canonical form. A blank line is skipped.
type sumMapper struct {
	buf []byte
}

func (m *sumMapper) Map(key, value []byte, out job.Emitter) error {
	n, ok := parseInt64(value)
	if !ok {
		if len(value) == 0 && len(bytes.TrimSpace(key)) == 0 {
			return nil
		}
		return job.Permanent(fmt.Errorf("key %s: bad value %s: want a decimal int64", quote(key), quote(value)))
	}
	m.buf = strconv.AppendInt(m.buf[:0], n, 10)
	return out.Emit(key, m.buf)
}
