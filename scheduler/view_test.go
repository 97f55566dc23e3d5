package scheduler

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/gossip"
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
func (m *memRecords) DeleteAll(keys []string) error {
	for _, k := range keys {
		delete(m.recs, k)
	}
	return nil
}
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

func TestPlacement(t *testing.T) {
	live := []string{"a", "b", "c"}
	liveRing := ring.New(ring.Config{}, live...)
	blocks := ring.New(ring.Config{}, "a", "b", "c", "d") // d joined after submission
	count := map[string]int{}
	for i := 0; i < 3000; i++ {
		id := blockstore.Sum([]byte(fmt.Sprint(i)))
		sp := split{index: i, parts: []splitPart{{blocks: []blockstore.BlockRef{{ID: id}}, file: InputFile{Replication: 2}}}}
		got := mapperOf("job-x", sp, 3000, blocks, live, liveRing)
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
		gen := mapperOf("job-x", split{index: i, gen: true}, 3000, blocks, live, liveRing)
		count[gen]++
	}
	if len(count) != 3 {
		t.Fatalf("generator splits not spread over the nodes: %v", count)
	}
	// Reducers: the same answer on every node, a live participant each.
	reds := reducersOf("job-x", 50, true, live, liveRing)
	if !slices.Equal(reds, reducersOf("job-x", 50, true, []string{"c", "a", "b"}, ring.New(ring.Config{}, "c", "a", "b"))) || slices.Contains(reds, "d") || slices.Contains(reds, "") {
		t.Fatalf("reducers %v not stable, or not live", reds)
	}
	// A job recorded without EvenReducers (submitted while a member of an
	// older release was alive) places its partitions as that release
	// does: each on its owner on the ring of live participants, so that
	// both releases run every partition on the same node.
	for p, n := range reducersOf("job-x", 50, false, live, liveRing) {
		older := liveRing.Owner("job-x/" + strconv.Itoa(p)) // the older release's rule
		if n != older {
			t.Fatalf("partition %d of a job without EvenReducers: reducer %s, the older release's %s", p, n, older)
		}
		if o := reducerOrder("job-x", p, false, live, liveRing); !slices.Equal(o, liveRing.Owners("job-x/"+strconv.Itoa(p), len(live))) {
			t.Fatalf("partition %d's backup order %v is not its ring owners'", p, o)
		}
	}
}

// Every node reduces ⌊R/n⌋ or ⌈R/n⌉ partitions, whatever the job; the
// ring of live participants put 4 of 6 on one node of 3 for many jobs.
func TestReducersEven(t *testing.T) {
	live := []string{"node1", "node2", "node3"}
	for j := range 200 {
		id := fmt.Sprintf("job-20261202-1130%02d-%06x", j%60, j*7919)
		for _, r := range []int{1, 2, 3, 4, 6, 7, 11, 100} {
			count := map[string]int{}
			for _, n := range reducersOf(id, r, true, live, nil) {
				count[n]++
			}
			for _, n := range live {
				if c := count[n]; c < r/3 || c > (r+2)/3 {
					t.Fatalf("%s, %d reducers: %s reduces %d partitions (%v)", id, r, n, c, count)
				}
			}
		}
	}
	// A node dies: its partitions move to the others, still even, and
	// the others keep most of theirs.
	before := reducersOf("job-x", 6, true, []string{"a", "b", "c", "d"}, nil)
	after := reducersOf("job-x", 6, true, []string{"a", "b", "c"}, nil)
	count, kept := map[string]int{}, 0
	for p, n := range after {
		count[n]++
		if before[p] == n {
			kept++
		}
	}
	moved := 0
	for _, n := range before {
		if n != "d" {
			moved++
		}
	}
	if count["a"] != 2 || count["b"] != 2 || count["c"] != 2 || kept < moved/2 {
		t.Fatalf("after d died: %v (before %v), %d of %d kept", after, before, kept, moved)
	}
	if o := reducerOrder("job-x", 3, true, []string{"b", "a", "c"}, nil); !slices.Equal(o, reducerOrder("job-x", 3, true, []string{"c", "b", "a"}, nil)) || len(o) != 3 {
		t.Fatalf("reducerOrder %v depends on the order of live", o)
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
}

func TestParseTaskTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"": DefaultTaskTimeout, "0": 0, "0s": 0, "90s": 90 * time.Second, "1s": time.Second, "168h": MaxTaskTimeout} {
		if got, err := ParseTaskTimeout(in); err != nil || got != want {
			t.Errorf("ParseTaskTimeout(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"soon", "-3s", "999ms", "169h", "10"} {
		if _, err := ParseTaskTimeout(in); !errors.Is(err, ErrBadRequest) {
			t.Errorf("ParseTaskTimeout(%q): %v, want a bad request", in, err)
		}
	}
}
