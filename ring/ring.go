// Package ring places keys on members by consistent hashing with virtual
// nodes. A Ring is an immutable value: it is built from a set of member
// names and answers which members own a key. Building it from the same set
// gives the same ring whatever the order the names come in, and adding a
// member moves keys only to that member.
package ring

import (
	"slices"
	"sort"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// DefaultVirtualNodes is how many points each member gets on the ring. With
// 8 members it keeps the busiest member within 15% of the mean load.
const DefaultVirtualNodes = 256

// Hash maps bytes to a point on the ring.
type Hash func(data []byte) uint64

// Config shapes a ring. The zero value is usable: every field has a default.
type Config struct {
	// VirtualNodes is the number of points per member. Default
	// DefaultVirtualNodes.
	VirtualNodes int
	// Hash places keys and virtual nodes. Default xxhash64. Every member
	// of a cluster must use the same hash.
	Hash Hash
}

func (c *Config) fill() {
	if c.VirtualNodes <= 0 {
		c.VirtualNodes = DefaultVirtualNodes
	}
	if c.Hash == nil {
		c.Hash = xxhash.Sum64
	}
}

type point struct {
	hash uint64
	node int // index into Ring.nodes
}

// Ring is an immutable consistent-hash ring. It is safe for concurrent use.
type Ring struct {
	cfg    Config
	nodes  []string // sorted, distinct
	points []point  // sorted by (hash, node name)
}

// New builds a ring of the given members. Duplicate and empty names are
// ignored.
func New(cfg Config, members ...string) *Ring {
	cfg.fill()
	nodes := make([]string, 0, len(members))
	for _, m := range members {
		if m != "" {
			nodes = append(nodes, m)
		}
	}
	slices.Sort(nodes)
	nodes = slices.Compact(nodes)

	r := &Ring{cfg: cfg, nodes: nodes, points: make([]point, 0, len(nodes)*cfg.VirtualNodes)}
	buf := make([]byte, 0, 64)
	for i, n := range nodes {
		for v := 0; v < cfg.VirtualNodes; v++ {
			buf = append(buf[:0], n...)
			buf = append(buf, '#')
			buf = strconv.AppendInt(buf, int64(v), 10)
			r.points = append(r.points, point{hash: cfg.Hash(buf), node: i})
		}
	}
	// Ties between points of different members are broken by name, so the
	// ring is a function of the member set alone.
	sort.Slice(r.points, func(a, b int) bool {
		pa, pb := r.points[a], r.points[b]
		if pa.hash != pb.hash {
			return pa.hash < pb.hash
		}
		return pa.node < pb.node
	})
	return r
}

// With returns a new ring that also holds the given members.
func (r *Ring) With(members ...string) *Ring {
	return New(r.cfg, append(slices.Clone(r.nodes), members...)...)
}

// Without returns a new ring without the given members.
func (r *Ring) Without(members ...string) *Ring {
	keep := make([]string, 0, len(r.nodes))
	for _, n := range r.nodes {
		if !slices.Contains(members, n) {
			keep = append(keep, n)
		}
	}
	return New(r.cfg, keep...)
}

// Members returns the ring's members, sorted. The caller must not modify
// the slice.
func (r *Ring) Members() []string { return r.nodes }

// Len is the number of members.
func (r *Ring) Len() int { return len(r.nodes) }

// Has reports whether name is a member.
func (r *Ring) Has(name string) bool {
	_, ok := slices.BinarySearch(r.nodes, name)
	return ok
}

// Owners returns the first n distinct members found walking clockwise from
// the key's hash: the key's primary owner first, then its replicas. It
// returns fewer than n when the ring has fewer members, and nil for an
// empty ring or n <= 0.
func (r *Ring) Owners(key string, n int) []string {
	return r.OwnersOf(r.cfg.Hash([]byte(key)), n)
}

// OwnersOf is Owners for a key already hashed with the ring's hash.
func (r *Ring) OwnersOf(h uint64, n int) []string {
	if n <= 0 || len(r.points) == 0 {
		return nil
	}
	n = min(n, len(r.nodes))
	i := sort.Search(len(r.points), func(i int) bool { return r.points[i].hash >= h })
	owners := make([]string, 0, n)
	var seen uint64 // bitmap for small rings, map beyond 64 members
	var seenMap map[int]bool
	if len(r.nodes) > 64 {
		seenMap = make(map[int]bool, n)
	}
	for k := 0; len(owners) < n && k < len(r.points); k++ {
		p := r.points[(i+k)%len(r.points)]
		if seenMap != nil {
			if seenMap[p.node] {
				continue
			}
			seenMap[p.node] = true
		} else {
			if seen&(1<<uint(p.node)) != 0 {
				continue
			}
			seen |= 1 << uint(p.node)
		}
		owners = append(owners, r.nodes[p.node])
	}
	return owners
}

// Owner returns the key's primary owner, or "" for an empty ring.
func (r *Ring) Owner(key string) string {
	if o := r.Owners(key, 1); len(o) > 0 {
		return o[0]
	}
	return ""
}
