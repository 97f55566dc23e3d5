package ring

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// digitHash reads "NAME#V" as NAME + 10*V and a plain key as its number, so
// a test can lay out the ring by hand.
func digitHash(b []byte) uint64 {
	s := string(b)
	if name, v, ok := strings.Cut(s, "#"); ok {
		n, _ := strconv.Atoi(name)
		k, _ := strconv.Atoi(v)
		return uint64(n + 10*k)
	}
	n, _ := strconv.Atoi(s)
	return uint64(n)
}

func TestOwnersExactTable(t *testing.T) {
	// Points: node 2 at 2,12,22; node 4 at 4,14,24; node 6 at 6,16,26.
	r := New(Config{VirtualNodes: 3, Hash: digitHash}, "6", "4", "2")
	cases := []struct {
		key  string
		n    int
		want []string
	}{
		{"2", 1, []string{"2"}},
		{"3", 1, []string{"4"}},
		{"11", 1, []string{"2"}},
		{"23", 3, []string{"4", "6", "2"}},
		{"27", 2, []string{"2", "4"}}, // wraps past the last point
		{"5", 5, []string{"6", "2", "4"}},
		{"5", 0, nil},
	}
	for _, c := range cases {
		if got := r.Owners(c.key, c.n); !slices.Equal(got, c.want) {
			t.Errorf("Owners(%q, %d) = %v, want %v", c.key, c.n, got, c.want)
		}
	}

	// Adding node 8 (points 8, 18, 28) takes exactly the keys just below
	// its points.
	r8 := r.With("8")
	for key, want := range map[string]string{"2": "2", "7": "8", "17": "8", "27": "8", "29": "2", "23": "4"} {
		if got := r8.Owner(key); got != want {
			t.Errorf("after join: Owner(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestEmptyRing(t *testing.T) {
	r := New(Config{})
	if got := r.Owners("x", 3); got != nil {
		t.Fatalf("Owners on empty ring = %v", got)
	}
	if r.Owner("x") != "" {
		t.Fatal("Owner on empty ring not empty")
	}
}

func TestInsertionOrderIndependent(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f", "g"}
	ref := New(Config{}, names...)
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 10; trial++ {
		shuffled := slices.Clone(names)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		// Build by one call and by successive joins; both must agree.
		byNew := New(Config{}, shuffled...)
		byJoin := New(Config{})
		for _, n := range shuffled {
			byJoin = byJoin.With(n)
		}
		for k := 0; k < 2000; k++ {
			key := fmt.Sprintf("key-%d", k)
			want := ref.Owners(key, 3)
			if got := byNew.Owners(key, 3); !slices.Equal(got, want) {
				t.Fatalf("order %v: Owners(%q) = %v, want %v", shuffled, key, got, want)
			}
			if got := byJoin.Owners(key, 3); !slices.Equal(got, want) {
				t.Fatalf("joins %v: Owners(%q) = %v, want %v", shuffled, key, got, want)
			}
		}
	}
}

func TestJoinMovesKeysOnlyToNewNode(t *testing.T) {
	before := New(Config{}, "n1", "n2", "n3", "n4", "n5")
	after := before.With("n6")
	moved := 0
	for k := 0; k < 20000; k++ {
		key := fmt.Sprintf("blk-%d", k)
		old, cur := before.Owner(key), after.Owner(key)
		if old != cur {
			moved++
			if cur != "n6" {
				t.Fatalf("key %q moved from %s to %s, not to the new node", key, old, cur)
			}
		}
		// Replica sets: the new set is the old one with at most the new
		// node swapped in, keeping the old order otherwise.
		oldSet, newSet := before.Owners(key, 3), after.Owners(key, 3)
		rest := slices.DeleteFunc(slices.Clone(newSet), func(s string) bool { return s == "n6" })
		if !slices.Equal(rest, oldSet[:len(rest)]) {
			t.Fatalf("key %q: owners %v -> %v moved keys between old nodes", key, oldSet, newSet)
		}
	}
	if moved == 0 {
		t.Fatal("no key moved to the new node")
	}
	// Leaving is the inverse: only the leaver's keys move.
	back := after.Without("n6")
	for k := 0; k < 2000; k++ {
		key := fmt.Sprintf("blk-%d", k)
		if !slices.Equal(back.Owners(key, 3), before.Owners(key, 3)) {
			t.Fatalf("leave did not restore owners of %q", key)
		}
	}
}

func TestBalanceEightNodes(t *testing.T) {
	var names []string
	for i := 1; i <= 8; i++ {
		names = append(names, fmt.Sprintf("node-%d", i))
	}
	r := New(Config{}, names...)
	const keys = 100000
	load := map[string]int{}
	for k := 0; k < keys; k++ {
		load[r.Owner(fmt.Sprintf("%064x", k))]++
	}
	mean := float64(keys) / float64(len(names))
	worst := 0
	for _, n := range load {
		worst = max(worst, n)
	}
	ratio := float64(worst) / mean
	t.Logf("max/mean = %.3f (vnodes %d)", ratio, DefaultVirtualNodes)
	if ratio > 1.15 {
		t.Fatalf("max/mean load %.3f > 1.15: %v", ratio, load)
	}
}

func TestOwnersDistinct(t *testing.T) {
	var names []string
	for i := 0; i < 100; i++ { // past the 64-member bitmap
		names = append(names, fmt.Sprintf("m%03d", i))
	}
	r := New(Config{VirtualNodes: 8}, names...)
	for k := 0; k < 500; k++ {
		o := r.Owners(strconv.Itoa(k), 7)
		s := slices.Clone(o)
		slices.Sort(s)
		if len(slices.Compact(s)) != 7 {
			t.Fatalf("owners not distinct: %v", o)
		}
	}
}

func BenchmarkOwners3(b *testing.B) {
	r := New(Config{}, "a", "b", "c", "d", "e", "f", "g", "h")
	for b.Loop() {
		r.Owners("some/block/key", 3)
	}
}
