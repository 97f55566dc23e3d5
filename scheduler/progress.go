package scheduler

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/job"
)

// itemSet is a set of task indexes (splits or partitions) in compact form:
// a bitmap in memory; on the wire whichever is shorter of a list of runs
// (varint gap, varint length) and the bitmap itself. 100,000 scattered
// splits cost at most 12.5 KB; a contiguous range a few bytes.
type itemSet struct {
	words []uint64
}

func (s *itemSet) Has(i int) bool {
	w := i >> 6
	return i >= 0 && w < len(s.words) && s.words[w]&(1<<(uint(i)&63)) != 0
}

func (s *itemSet) Add(i int) {
	w := i >> 6
	for len(s.words) <= w {
		s.words = append(s.words, 0)
	}
	s.words[w] |= 1 << (uint(i) & 63)
}

func (s *itemSet) Remove(i int) {
	if w := i >> 6; i >= 0 && w < len(s.words) {
		s.words[w] &^= 1 << (uint(i) & 63)
	}
}

// or adds every item of o.
func (s *itemSet) or(o *itemSet) {
	for len(s.words) < len(o.words) {
		s.words = append(s.words, 0)
	}
	for i, w := range o.words {
		s.words[i] |= w
	}
}

// and returns the items in both sets.
func (s *itemSet) and(o *itemSet) itemSet {
	out := itemSet{words: make([]uint64, min(len(s.words), len(o.words)))}
	for i := range out.words {
		out.words[i] = s.words[i] & o.words[i]
	}
	return out
}

// andNot returns the items of s not in o.
func (s *itemSet) andNot(o *itemSet) itemSet {
	out := itemSet{words: slices.Clone(s.words)}
	for i := range min(len(s.words), len(o.words)) {
		out.words[i] &^= o.words[i]
	}
	return out
}

// hasAll reports whether every item below n is in the set.
func (s *itemSet) hasAll(n int) bool {
	full := n >> 6
	if len(s.words) < (n+63)>>6 {
		return false
	}
	for i := 0; i < full; i++ {
		if s.words[i] != ^uint64(0) {
			return false
		}
	}
	if rem := uint(n) & 63; rem != 0 {
		mask := uint64(1)<<rem - 1
		return s.words[full]&mask == mask
	}
	return true
}

// addRange adds the items in [from, to).
func (s *itemSet) addRange(from, to int) {
	if from >= to {
		return
	}
	for len(s.words) <= (to-1)>>6 {
		s.words = append(s.words, 0)
	}
	for i := from; i < to; {
		if i&63 == 0 && to-i >= 64 {
			s.words[i>>6] = ^uint64(0)
			i += 64
			continue
		}
		s.words[i>>6] |= 1 << (uint(i) & 63)
		i++
	}
}

// countBelow is the number of items below n.
func (s *itemSet) countBelow(n int) int {
	c := 0
	for wi, w := range s.words {
		if wi<<6 >= n {
			break
		}
		if end := (wi + 1) << 6; end > n {
			w &= 1<<(uint(n)&63) - 1
		}
		c += bits.OnesCount64(w)
	}
	return c
}

// intersects reports whether the sets share an item.
func (s *itemSet) intersects(o *itemSet) bool {
	for i := range min(len(s.words), len(o.words)) {
		if s.words[i]&o.words[i] != 0 {
			return true
		}
	}
	return false
}

// Len is the number of items in the set.
func (s *itemSet) Len() int {
	n := 0
	for _, w := range s.words {
		n += bits.OnesCount64(w)
	}
	return n
}

// Each calls fn for every item in increasing order.
func (s *itemSet) Each(fn func(i int)) {
	for wi, w := range s.words {
		for w != 0 {
			b := bits.TrailingZeros64(w)
			fn(wi<<6 + b)
			w &^= 1 << uint(b)
		}
	}
}

// String lists the set as runs, e.g. "0-2,5" (the scenario files' form).
func (s itemSet) String() string {
	var parts []string
	for _, r := range s.runs() {
		if r[1] == r[0]+1 {
			parts = append(parts, strconv.Itoa(r[0]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", r[0], r[1]-1))
		}
	}
	return strings.Join(parts, ",")
}

// runs lists [start, end) intervals in order.
func (s *itemSet) runs() [][2]int {
	var out [][2]int
	s.Each(func(i int) {
		if n := len(out); n > 0 && out[n-1][1] == i {
			out[n-1][1]++
			return
		}
		out = append(out, [2]int{i, i + 1})
	})
	return out
}

const (
	setRuns   = 1
	setBitmap = 2
)

// maxSetItems bounds an item index on decoding, so a corrupt record cannot
// make a node allocate without bound.
const maxSetItems = 1 << 22

var (
	_ msgpack.CustomEncoder = (*itemSet)(nil)
	_ msgpack.CustomDecoder = (*itemSet)(nil)
)

// EncodeMsgpack writes the shorter of the runs and the bitmap.
func (s *itemSet) EncodeMsgpack(enc *msgpack.Encoder) error {
	var runs []byte
	prev := 0
	for _, r := range s.runs() {
		runs = binary.AppendUvarint(runs, uint64(r[0]-prev))
		runs = binary.AppendUvarint(runs, uint64(r[1]-r[0]))
		prev = r[1]
	}
	words := s.words
	for len(words) > 0 && words[len(words)-1] == 0 {
		words = words[:len(words)-1]
	}
	if len(runs) <= 8*len(words) {
		return enc.EncodeBytes(append([]byte{setRuns}, runs...))
	}
	b := make([]byte, 1, 1+8*len(words))
	b[0] = setBitmap
	for _, w := range words {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	return enc.EncodeBytes(b)
}

// DecodeMsgpack reads either form.
func (s *itemSet) DecodeMsgpack(dec *msgpack.Decoder) error {
	b, err := dec.DecodeBytes()
	if err != nil {
		return err
	}
	s.words = nil
	if len(b) == 0 {
		return nil
	}
	switch b[0] {
	case setRuns:
		b = b[1:]
		pos := 0
		for len(b) > 0 {
			gap, n := binary.Uvarint(b)
			if n <= 0 {
				return errors.New("item set: bad run")
			}
			b = b[n:]
			length, n := binary.Uvarint(b)
			if n <= 0 {
				return errors.New("item set: bad run")
			}
			b = b[n:]
			if gap > maxSetItems || length > maxSetItems || pos+int(gap)+int(length) > maxSetItems {
				return errors.New("item set: index out of range")
			}
			pos += int(gap)
			s.addRange(pos, pos+int(length))
			pos += int(length)
		}
	case setBitmap:
		b = b[1:]
		if len(b)%8 != 0 || len(b)*8 > maxSetItems {
			return errors.New("item set: bad bitmap")
		}
		s.words = make([]uint64, len(b)/8)
		for i := range s.words {
			s.words[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
	default:
		return fmt.Errorf("item set: unknown form %d", b[0])
	}
	return nil
}

func (s *itemSet) clone() itemSet { return itemSet{words: slices.Clone(s.words)} }

// taskKind tells map tasks from reduce tasks.
type taskKind uint8

const (
	kindMap    taskKind = 0
	kindReduce taskKind = 1
)

func (k taskKind) String() string {
	if k == kindReduce {
		return "reduce"
	}
	return "map"
}

// taskFails is one node's failed attempts of one task that no node has
// finished yet.
type taskFails struct {
	Kind      taskKind `msgpack:"k"`
	Index     int      `msgpack:"i"`
	N         int      `msgpack:"n"`           // failed attempts of the job's code on this node
	Infra     int      `msgpack:"x,omitempty"` // failed attempts outside the job's code
	Permanent string   `msgpack:"p,omitempty"` // the error of a failure no retry can change
	Last      string   `msgpack:"e"`           // the last error, truncated to maxFailError bytes
}

// attempts is how many attempts of the task failed on this node.
func (f *taskFails) attempts() int { return f.N + f.Infra }

// maxFailError bounds the error kept per failing task.
const maxFailError = 512

// NodeTasks is one node's whole part in one job, in one record
// tasks/<job>/<node> that only that node writes:
//
//   - Maps: the splits whose map output it holds (a map-only job: whose
//     output part it wrote); Commits: the partitions whose output part it
//     wrote. Both are compact item sets.
//   - MapCounted/RedCounted ⊆ Maps/Commits: the items whose counters are
//     in MapSum/RedSum. The counting rule (countWinner) makes every item
//     counted by exactly one record once the records settle, so the job's
//     counters are the sum of the records' sums.
//   - Launched and Failed: attempts this node ran and saw fail (Hadoop's
//     TOTAL_LAUNCHED_* and NUM_FAILED_* count every attempt).
//   - Fails: failed attempts of tasks nobody has finished yet, as counts
//     with the last error; dropped once the task is done anywhere.
//   - Running: the attempts this node has taken and not ended, with when
//     it took them (queued for a slot or computing); MapTime/RedTime and
//     MapTimed/RedTimed: the summed wall time in milliseconds, and the
//     number, of its attempts that finished. Speculation judges stragglers
//     by them (speculate).
//   - SpecMaps/SpecReduces: backup attempts it started; KilledMaps/
//     KilledReduces: attempts it stopped because another node's attempt of
//     the same task finished first.
type NodeTasks struct {
	Node            string
	Maps            itemSet
	Commits         itemSet
	MapCounted      itemSet
	RedCounted      itemSet
	MapSum          job.Counters
	RedSum          job.Counters
	LaunchedMaps    int
	LaunchedReduces int
	FailedMaps      int
	FailedReduces   int
	Fails           []taskFails
	Running         []runningTask
	MapTime         int64
	MapTimed        int
	RedTime         int64
	RedTimed        int
	SpecMaps        int
	SpecReduces     int
	KilledMaps      int
	KilledReduces   int
}

// runningTask is one attempt a node has taken and not yet ended.
type runningTask struct {
	Kind  taskKind `msgpack:"k"`
	Index int      `msgpack:"i"`
	// Start is when the node took the attempt, in Unix milliseconds of its
	// clock.
	Start int64 `msgpack:"t"`
	// Attempt is the attempt's number (1 for a task's first).
	Attempt int `msgpack:"a,omitempty"`
	// Backup marks a speculative attempt.
	Backup bool `msgpack:"b,omitempty"`
}

// nodeTasksWire is NodeTasks as stored: the counted sets as the items done
// but not counted here, which is almost always empty, so the record holds
// one item set per kind.
type nodeTasksWire struct {
	Node            string        `msgpack:"n"`
	Maps            itemSet       `msgpack:"m"`
	Commits         itemSet       `msgpack:"c"`
	MapNotCounted   itemSet       `msgpack:"mx"`
	RedNotCounted   itemSet       `msgpack:"cx"`
	MapSum          job.Counters  `msgpack:"ms,omitempty"`
	RedSum          job.Counters  `msgpack:"rs,omitempty"`
	LaunchedMaps    int           `msgpack:"lm"`
	LaunchedReduces int           `msgpack:"lr"`
	FailedMaps      int           `msgpack:"fm"`
	FailedReduces   int           `msgpack:"fr"`
	Fails           []taskFails   `msgpack:"f,omitempty"`
	Running         []runningTask `msgpack:"ru,omitempty"`
	MapTime         int64         `msgpack:"mt,omitempty"`
	MapTimed        int           `msgpack:"mn,omitempty"`
	RedTime         int64         `msgpack:"rt,omitempty"`
	RedTimed        int           `msgpack:"rn,omitempty"`
	SpecMaps        int           `msgpack:"sm,omitempty"`
	SpecReduces     int           `msgpack:"sr,omitempty"`
	KilledMaps      int           `msgpack:"km,omitempty"`
	KilledReduces   int           `msgpack:"kr,omitempty"`
}

var (
	_ msgpack.CustomEncoder = (*NodeTasks)(nil)
	_ msgpack.CustomDecoder = (*NodeTasks)(nil)
)

// EncodeMsgpack writes the wire form.
func (t *NodeTasks) EncodeMsgpack(enc *msgpack.Encoder) error {
	w := nodeTasksWire{Node: t.Node, Maps: t.Maps, Commits: t.Commits, MapSum: t.MapSum, RedSum: t.RedSum,
		LaunchedMaps: t.LaunchedMaps, LaunchedReduces: t.LaunchedReduces, FailedMaps: t.FailedMaps, FailedReduces: t.FailedReduces, Fails: t.Fails,
		Running: t.Running, MapTime: t.MapTime, MapTimed: t.MapTimed, RedTime: t.RedTime, RedTimed: t.RedTimed,
		SpecMaps: t.SpecMaps, SpecReduces: t.SpecReduces, KilledMaps: t.KilledMaps, KilledReduces: t.KilledReduces}
	t.Maps.Each(func(i int) {
		if !t.MapCounted.Has(i) {
			w.MapNotCounted.Add(i)
		}
	})
	t.Commits.Each(func(i int) {
		if !t.RedCounted.Has(i) {
			w.RedNotCounted.Add(i)
		}
	})
	return enc.Encode(&w)
}

// DecodeMsgpack reads the wire form.
func (t *NodeTasks) DecodeMsgpack(dec *msgpack.Decoder) error {
	var w nodeTasksWire
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*t = NodeTasks{Node: w.Node, Maps: w.Maps, Commits: w.Commits, MapSum: w.MapSum, RedSum: w.RedSum,
		LaunchedMaps: w.LaunchedMaps, LaunchedReduces: w.LaunchedReduces, FailedMaps: w.FailedMaps, FailedReduces: w.FailedReduces, Fails: w.Fails,
		Running: w.Running, MapTime: w.MapTime, MapTimed: w.MapTimed, RedTime: w.RedTime, RedTimed: w.RedTimed,
		SpecMaps: w.SpecMaps, SpecReduces: w.SpecReduces, KilledMaps: w.KilledMaps, KilledReduces: w.KilledReduces}
	t.Maps.Each(func(i int) {
		if !w.MapNotCounted.Has(i) {
			t.MapCounted.Add(i)
		}
	})
	t.Commits.Each(func(i int) {
		if !w.RedNotCounted.Has(i) {
			t.RedCounted.Add(i)
		}
	})
	return nil
}

func (t *NodeTasks) done(k taskKind) *itemSet {
	if k == kindReduce {
		return &t.Commits
	}
	return &t.Maps
}

func (t *NodeTasks) counted(k taskKind) *itemSet {
	if k == kindReduce {
		return &t.RedCounted
	}
	return &t.MapCounted
}

func (t *NodeTasks) sum(k taskKind) *job.Counters {
	if k == kindReduce {
		return &t.RedSum
	}
	return &t.MapSum
}

// runningOf returns this node's running attempt of a task, or nil.
func (t *NodeTasks) runningOf(k taskKind, i int) *runningTask {
	for n := range t.Running {
		if t.Running[n].Kind == k && t.Running[n].Index == i {
			return &t.Running[n]
		}
	}
	return nil
}

// failsOf returns this node's failure entry for a task, or nil.
func (t *NodeTasks) failsOf(k taskKind, i int) *taskFails {
	for n := range t.Fails {
		if t.Fails[n].Kind == k && t.Fails[n].Index == i {
			return &t.Fails[n]
		}
	}
	return nil
}

func (t *NodeTasks) clone() *NodeTasks {
	c := *t
	c.Maps, c.Commits = t.Maps.clone(), t.Commits.clone()
	c.MapCounted, c.RedCounted = t.MapCounted.clone(), t.RedCounted.clone()
	c.MapSum, c.RedSum = cloneCounters(t.MapSum), cloneCounters(t.RedSum)
	c.Fails = slices.Clone(t.Fails)
	c.Running = slices.Clone(t.Running)
	return &c
}

func cloneCounters(c job.Counters) job.Counters {
	if c == nil {
		return nil
	}
	out := job.Counters{}
	out.Merge(c)
	return out
}

// subtract removes c from sum, dropping counters that reach zero.
func subtract(sum job.Counters, c job.Counters) {
	for k, v := range c {
		sum[k] -= v
		if sum[k] == 0 {
			delete(sum, k)
		}
	}
}
