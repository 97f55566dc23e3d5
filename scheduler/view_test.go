package scheduler

import (
	"errors"
	"fmt"
	"sort"
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
