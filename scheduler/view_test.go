package scheduler

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/ring"
)

// memRecords is an in-memory Records with explicit versions, so a test
// can order writes as it likes.
type memRecords struct {
	recs map[string]gossip.Record
	hlc  uint64
}

func newMem() *memRecords { return &memRecords{recs: map[string]gossip.Record{}} }

func (m *memRecords) put(key string, v any, node string) {
	m.hlc++
	m.recs[key] = gossip.Record{Key: key, Value: encode(v), Version: gossip.Version{HLC: m.hlc, Node: node}}
}

func (m *memRecords) Put(key string, value []byte) (gossip.Record, error) {
	m.hlc++
	r := gossip.Record{Key: key, Value: value, Version: gossip.Version{HLC: m.hlc}}
	m.recs[key] = r
	return r, nil
}
func (m *memRecords) Get(key string) (gossip.Record, bool) { r, ok := m.recs[key]; return r, ok }
func (m *memRecords) Delete(key string) error              { delete(m.recs, key); return nil }
func (m *memRecords) Scan(prefix string) []gossip.Record {
	var out []gossip.Record
	for k, r := range m.recs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
func (m *memRecords) Watch(string) (<-chan gossip.Record, func()) { return nil, func() {} }

func testJob(id string, reducers int) JobRecord {
	return JobRecord{ID: id, Name: "wordcount", Reducers: reducers, MaxAttempts: 4, Participants: []string{"a", "b", "c"},
		Inputs: []InputFile{{Path: "/in", Blocks: 3, Replication: 2}}}
}

func TestAcceptedMapIsLowestValidVersion(t *testing.T) {
	m := newMem()
	id := "job-1"
	m.put(jobPrefix+id, testJob(id, 2), "a")
	m.put(keyJoin(mapPrefix+id, "0", "b"), MapRecord{Node: "b", Attempt: 1}, "b") // oldest
	m.put(keyJoin(mapPrefix+id, "0", "a"), MapRecord{Node: "a", Attempt: 1}, "a")
	m.put(keyJoin(mapPrefix+id, "1", "c"), MapRecord{Node: "c", Attempt: 1}, "c")
	m.put(keyJoin(mapPrefix+id, "2", "x"), MapRecord{Node: "y", Attempt: 1}, "x") // key and body disagree: ignored
	v, ok := loadView(m, id)
	if !ok {
		t.Fatal("job not loaded")
	}
	if e, ok := v.acceptedMap(0, []string{"a", "b", "c"}); !ok || e.node != "b" {
		t.Fatalf("split 0 accepted %v %v, want b (lowest version)", e.node, ok)
	}
	// b dies: its output is gone, a's becomes the accepted one.
	if e, ok := v.acceptedMap(0, []string{"a", "c"}); !ok || e.node != "a" {
		t.Fatalf("split 0 after b died: %v %v, want a", e.node, ok)
	}
	if _, ok := v.acceptedMap(1, []string{"a", "b"}); ok {
		t.Fatal("a dead node's map output was accepted")
	}
	if _, ok := v.acceptedMap(2, []string{"a", "b", "c"}); ok {
		t.Fatal("a record whose body names another node was accepted")
	}
}

func TestDoneAndCounters(t *testing.T) {
	m := newMem()
	id := "job-2"
	m.put(jobPrefix+id, testJob(id, 2), "a")
	c := func(n int64) job.Counters { return job.Counters{job.MAP_INPUT_RECORDS: n} }
	for i, n := range []string{"a", "b", "c"} {
		m.put(keyJoin(mapPrefix+id, fmt.Sprint(i), n), MapRecord{Node: n, Attempt: 1, Local: true, Counters: c(10)}, n)
	}
	// Split 0 ran twice (a and c): counted once, launched twice.
	m.put(keyJoin(mapPrefix+id, "0", "c"), MapRecord{Node: "c", Attempt: 1, Counters: c(10)}, "c")
	m.put(keyJoin(commitPrefix+id, "0", "a"), CommitRecord{Node: "a", Attempt: 1, Counters: job.Counters{job.REDUCE_OUTPUT_RECORDS: 5}}, "a")
	v, _ := loadView(m, id)
	if v.done(3) {
		t.Fatal("done with a partition uncommitted")
	}
	// The commit of attempt 2 implies one failure of b's, not yet heard of.
	m.put(keyJoin(commitPrefix+id, "1", "b"), CommitRecord{Node: "b", Attempt: 2, Counters: job.Counters{job.REDUCE_OUTPUT_RECORDS: 7}}, "b")
	v, _ = loadView(m, id)
	if !v.done(3) || v.allMapsSeen(3) {
		t.Fatalf("done %v, all seen %v: want done, not all seen", v.done(3), v.allMapsSeen(3))
	}
	m.put(keyJoin(redFailPrefix+id, "1", "b", "1"), FailRecord{Node: "b", Error: "boom"}, "b")
	v, _ = loadView(m, id)
	if !v.allMapsSeen(3) {
		t.Fatal("all records are here")
	}
	got := v.counters(3)
	want := job.Counters{job.MAP_INPUT_RECORDS: 30, job.REDUCE_OUTPUT_RECORDS: 12, job.DATA_LOCAL_MAPS: 3,
		job.TOTAL_LAUNCHED_MAPS: 4, job.NUM_FAILED_MAPS: 0, job.TOTAL_LAUNCHED_REDUCES: 3, job.NUM_FAILED_REDUCES: 1}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s = %d, want %d", k, got[k], n)
		}
	}
}

func TestPlacement(t *testing.T) {
	live := []string{"a", "b", "c"}
	liveRing := ring.New(ring.Config{}, live...)
	blocks := ring.New(ring.Config{}, "a", "b", "c", "d") // d joined after submission
	count := map[string]int{}
	for i := 0; i < 300; i++ {
		id := blockstore.Sum([]byte(fmt.Sprint(i)))
		sp := split{index: i, block: blockstore.BlockRef{ID: id}, file: InputFile{Replication: 2}}
		got := mapperOf("job-x", sp, blocks, live, liveRing)
		owners := blocks.Owners(id.String(), 2)
		// The mapper is the first owner that takes part, else the job's ring.
		want := ""
		for _, o := range owners {
			if o != "d" {
				want = o
				break
			}
		}
		if want == "" {
			want = liveRing.Owner(id.String())
		}
		if got != want {
			t.Fatalf("split %d: mapper %s, want %s (owners %v)", i, got, want, owners)
		}
		gen := mapperOf("job-x", split{index: i, gen: true}, blocks, live, liveRing)
		count[gen]++
	}
	if len(count) != 3 {
		t.Fatalf("generator splits not spread over the nodes: %v", count)
	}
	// Reducers: the same answer on every node, a live participant each.
	for p := 0; p < 50; p++ {
		r := reducerOf("job-x", p, liveRing)
		if r != reducerOf("job-x", p, ring.New(ring.Config{}, "c", "a", "b")) || r == "d" {
			t.Fatalf("partition %d reducer %s not stable", p, r)
		}
	}
}

func TestNames(t *testing.T) {
	if id := newJobID(time.Date(2026, 11, 21, 6, 1, 2, 0, time.UTC)); !validJobID(id) || !strings.HasPrefix(id, "job-20261121-060102-") {
		t.Fatalf("newJobID = %q", id)
	}
	for _, bad := range []string{"", "job-../x", "JOB-1", "job-1/2", "x-1", "job-" + strings.Repeat("9", 80)} {
		if validJobID(bad) {
			t.Errorf("validJobID(%q) = true", bad)
		}
	}
	for key, want := range map[string]int{"map/j/3/nodeA": 3, "map/j/12/n/4": 12} {
		idx, node, ok := taskKeyParts(key, "map/j/")
		if !ok || idx != want || node == "" {
			t.Errorf("taskKeyParts(%q) = %d %q %v", key, idx, node, ok)
		}
	}
	for _, bad := range []string{"map/j/", "map/j/x/n", "map/j/-1/n", "map/j/3", "other/j/3/n"} {
		if _, _, ok := taskKeyParts(bad, "map/j/"); ok {
			t.Errorf("taskKeyParts(%q) accepted", bad)
		}
	}
}
