package scheduler

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBinCachePlan: a node's cached program is never deleted while a job
// that has not ended (or a submission here) uses it; otherwise it goes
// when the cluster no longer stores it, when unused for the maximum age,
// or, least recently used first, while the cache is over its size; a dead
// fetch's leftover goes; files that are not the cache's stay.
func TestBinCachePlan(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	sum := func(c byte) string { return strings.Repeat(string(c), 64) }
	bin := func(c byte, mib int64, unused time.Duration) cachedBin {
		return cachedBin{name: sum(c), size: mib << 20, used: now.Add(-unused).UnixNano()}
	}
	rule := binCacheRule{maxAge: 24 * time.Hour, maxBytes: 100 << 20}
	for _, tc := range []struct {
		name           string
		cached         []cachedBin
		pinned, stored string // the programs by their letters
		want           string // the deleted, in order, by letters (".tmp" spelled out)
	}{
		{
			name:   "a running job's program stays even when the cluster dropped it, old and over the cap",
			cached: []cachedBin{bin('a', 500, 30*24*time.Hour)},
			pinned: "a", stored: "",
			want: "",
		},
		{
			name:   "the cluster dropped it: deleted at once, however recently used",
			cached: []cachedBin{bin('a', 35, time.Second), bin('b', 35, time.Second)},
			pinned: "", stored: "b",
			want: "a",
		},
		{
			name:   "unused for longer than the maximum age: deleted; exactly the age: kept",
			cached: []cachedBin{bin('a', 1, 25*time.Hour), bin('b', 1, 24*time.Hour), bin('c', 1, time.Hour)},
			pinned: "", stored: "abc",
			want: "a",
		},
		{
			name: "over the cap: the least recently used unpinned go until it fits",
			cached: []cachedBin{
				bin('a', 40, time.Hour), bin('b', 40, 3*time.Hour), bin('c', 40, 2*time.Hour),
				bin('e', 40, 30*time.Minute),
				bin('d', 40, 5*time.Hour), // pinned: not counted, not deleted
			},
			pinned: "d", stored: "abcde",
			want: "bc",
		},
		{
			name:   "at the cap exactly: nothing goes",
			cached: []cachedBin{bin('a', 50, time.Hour), bin('b', 50, 2*time.Hour)},
			pinned: "", stored: "ab",
			want: "",
		},
		{
			name: "a dead fetch's leftover goes, even of a pinned program; files not the cache's stay",
			cached: []cachedBin{
				{name: sum('a') + ".tmp", size: 10 << 20, used: now.UnixNano()},
				{name: "notes.txt", size: 1, used: now.Add(-100 * 24 * time.Hour).UnixNano()},
				bin('a', 1, 0),
			},
			pinned: "a", stored: "",
			want: "a.tmp",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set := func(letters string) map[string]bool {
				m := map[string]bool{}
				for i := range letters {
					m[sum(letters[i])] = true
				}
				return m
			}
			var want []string
			for _, w := range strings.Fields(strings.ReplaceAll(tc.want, ".tmp", ".tmp ")) {
				tmp := strings.HasSuffix(w, ".tmp")
				for _, c := range []byte(strings.TrimSuffix(w, ".tmp")) {
					n := sum(c)
					if tmp {
						n += ".tmp"
					}
					want = append(want, n)
				}
			}
			got := binCachePlan(slices.Clone(tc.cached), set(tc.pinned), set(tc.stored), now, rule)
			if !slices.Equal(got, want) {
				t.Errorf("deleted %v, want %v", short(got), short(want))
			}
		})
	}
}

// short names a program by its first letter.
func short(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, n[:1]+strings.TrimLeft(n, n[:1]))
	}
	return out
}

// TestBinRepairPlan: a program is stored again from this node's cache
// exactly when a job that has not ended uses it, this node caches a
// verified copy (a file named after its sum) and the cluster does not
// store it.
func TestBinRepairPlan(t *testing.T) {
	sum := func(c byte) string { return strings.Repeat(string(c), 64) }
	set := func(letters string) map[string]bool {
		m := map[string]bool{}
		for i := range letters {
			m[sum(letters[i])] = true
		}
		return m
	}
	for _, tc := range []struct {
		name                    string
		cached                  []string // file names; letters stand for sums
		running, stored, wanted string   // programs by their letters
	}{
		{name: "a running job's program the cluster dropped, cached here: stored again",
			cached: []string{"b", "a"}, running: "ab", stored: "", wanted: "ab"},
		{name: "still stored: nothing to do",
			cached: []string{"a"}, running: "a", stored: "a", wanted: ""},
		{name: "no job that has not ended uses it (ended, or never a job's): the clean-up's to delete, not stored again",
			cached: []string{"a", "b"}, running: "", stored: "", wanted: ""},
		{name: "not cached here: another node's to store (the submitter caches it)",
			cached: nil, running: "a", stored: "", wanted: ""},
		{name: "a fetch's leftover is not a verified copy",
			cached: []string{"a.tmp"}, running: "a", stored: "", wanted: ""},
		{name: "only the running, dropped, cached ones, among others",
			cached: []string{"a", "b", "c", "d", "notes.txt"}, running: "acde", stored: "c", wanted: "ad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cached []cachedBin
			for _, n := range tc.cached {
				if n != "notes.txt" {
					n = sum(n[0]) + strings.TrimPrefix(n, n[:1])
				}
				cached = append(cached, cachedBin{name: n, size: 1 << 20})
			}
			var want []string
			for i := range tc.wanted {
				want = append(want, sum(tc.wanted[i]))
			}
			if got := binRepairPlan(cached, set(tc.running), set(tc.stored)); !slices.Equal(got, want) {
				t.Errorf("stored again %v, want %v", short(got), short(want))
			}
		})
	}
}
