package scheduler

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBinGCPlan: a stored program is deleted only when no job that has
// not ended references it, it was stored longer ago than the grace period,
// and the last ended job that used it ended longer ago than that too (an
// ended job still in the history does not keep it); exactly one alive
// node deletes, and none that sees no majority of the members alive; a
// pass deletes at most maxBinGC, the oldest first.
func TestBinGCPlan(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	grace := time.Hour
	sum := func(c byte) string { return strings.Repeat(string(c), 64) }
	bin := func(c byte, age time.Duration) storedBin {
		return storedBin{path: BinaryPath(sum(c)), at: now.Add(-age).UnixNano()}
	}
	stored := []storedBin{
		bin('a', 2*time.Hour),    // used by a running job
		bin('b', 30*time.Hour),   // used by an ended job still in the history, ended 2 h ago: deleted
		bin('c', 2*time.Hour),    // used by none, past the grace period: deleted
		bin('d', 10*time.Minute), // used by none, within the grace period (just uploaded)
		bin('e', grace),          // exactly the grace period old: kept
		bin('f', 3*time.Hour),    // used by none: deleted, before c (older)
		bin('g', 50*time.Hour),   // used by an ended job that ended 10 min ago: kept
		bin('h', 5*time.Hour),    // used by an ended job that ended exactly the grace period ago: kept
		{path: BinaryDir + "/leftover.tmp", at: now.Add(-5 * time.Hour).UnixNano()}, // not a program's name, unused: deleted first
	}
	running := int64(math.MaxInt64)
	referenced := map[string]int64{
		sum('a'): running,
		sum('b'): now.Add(-2 * time.Hour).UnixNano(),
		sum('g'): now.Add(-10 * time.Minute).UnixNano(),
		sum('h'): now.Add(-grace).UnixNano(),
	}
	alive := []string{"node1", "node2", "node3"}
	all := binGCView{usable: alive, alive: 3}
	only := func(n string) binGCView { return binGCView{usable: []string{n}, alive: 1} }
	var deleters []string
	var got []string
	for _, self := range alive {
		if plan := binGCPlan(slices.Clone(stored), referenced, all, self, now, grace); plan != nil {
			deleters = append(deleters, self)
			got = plan
		}
	}
	if len(deleters) != 1 {
		t.Fatalf("deleting nodes %v, want exactly one", deleters)
	}
	want := []string{BinaryPath(sum('b')), BinaryDir + "/leftover.tmp", BinaryPath(sum('f')), BinaryPath(sum('c'))}
	if !slices.Equal(got, want) {
		t.Errorf("deleted %v, want %v", got, want)
	}

	// The unused ones all within the grace period: nothing is deleted.
	used := map[string]int64{sum('a'): running, sum('b'): running, sum('c'): running, sum('f'): running}
	if plan := binGCPlan(stored[:6], used, only(deleters[0]), deleters[0], now, grace); len(plan) != 0 {
		t.Errorf("deleted %v within the grace period", plan)
	}
	// Another node alone is alive, and knows of no failed member: it collects.
	if plan := binGCPlan(stored, referenced, only("node9"), "node9", now, grace); len(plan) != 4 {
		t.Errorf("the only alive node deleted %v", plan)
	}
	// A node that is not alive (draining, unhealthy) does not.
	if plan := binGCPlan(stored, referenced, only("node9"), "node1", now, grace); plan != nil {
		t.Errorf("a node not among the alive deleted %v", plan)
	}
	// A node cut off from the others (it sees them failed) owns the key on
	// its own ring, but does not delete: the other side may run jobs of
	// these programs that it does not know. Nor do two halves of one size.
	// A majority does: two alive, one failed.
	for _, tc := range []struct {
		view binGCView
		self string
		want int
	}{
		{binGCView{usable: []string{"node1"}, alive: 1, failed: 2}, "node1", 0},
		{binGCView{usable: []string{"node1", "node2"}, alive: 2, failed: 2}, "", 0},
		{binGCView{usable: []string{"node1", "node2"}, alive: 2, failed: 1}, "", 4},
		// Alive but unusable members (low on disk) count for the majority.
		{binGCView{usable: []string{"node1"}, alive: 2, failed: 1}, "node1", 4},
	} {
		n := 0
		for _, self := range []string{"node1", "node2", "node3"} {
			if tc.self != "" && self != tc.self {
				continue
			}
			n += len(binGCPlan(stored, referenced, tc.view, self, now, grace))
		}
		if n != tc.want {
			t.Errorf("seeing %+v: %d deleted, want %d", tc.view, n, tc.want)
		}
	}

	// Many unused programs: a pass deletes maxBinGC of them, oldest first.
	var many []storedBin
	for i := 0; i < maxBinGC+10; i++ {
		many = append(many, storedBin{path: BinaryPath(fmt.Sprintf("%064x", i)), at: now.Add(-time.Duration(i+2) * time.Hour).UnixNano()})
	}
	plan := binGCPlan(many, nil, only("n"), "n", now, grace)
	if len(plan) != maxBinGC || plan[0] != BinaryPath(fmt.Sprintf("%064x", maxBinGC+9)) || plan[maxBinGC-1] != BinaryPath(fmt.Sprintf("%064x", 10)) {
		t.Errorf("a pass over %d unused programs deleted %d: first %s, last %s", len(many), len(plan), plan[0], plan[len(plan)-1])
	}
}
