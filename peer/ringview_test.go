package peer

import (
	"slices"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/gossip"
)

// TestRingViewLeavesOutBadMeta: a member whose metadata does not decode,
// or names no peer ID, takes no part in the ring or the peer tables.
func TestRingViewLeavesOutBadMeta(t *testing.T) {
	good, _ := msgpack.Marshal(nodeMeta{PeerID: "12D3good", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}, HTTP: "127.0.0.1:1"})
	noPeer, _ := msgpack.Marshal(nodeMeta{HTTP: "127.0.0.1:2"})
	alive := []gossip.Member{
		{Name: "a", State: gossip.StateAlive, Meta: good},
		{Name: "garbage", State: gossip.StateAlive, Meta: []byte{0xc1, 0xff, 0x00}},
		{Name: "truncated", State: gossip.StateAlive, Meta: good[:len(good)/2]},
		{Name: "nopeer", State: gossip.StateAlive, Meta: noPeer},
	}
	names, byName, byPeer, bad := ringView(alive, 1)
	if !slices.Equal(names, []string{"a"}) {
		t.Fatalf("ring members %v, want [a]", names)
	}
	if len(byName) != 1 || byPeer["12D3good"] != "a" {
		t.Fatalf("peer tables %v %v", byName, byPeer)
	}
	for _, n := range []string{"garbage", "truncated", "nopeer"} {
		if bad[n] == nil {
			t.Errorf("%s not reported", n)
		}
	}
}

// TestRingViewWireVersions: with this node at generation 2, members at 1
// (or announcing none: releases before the field), 2 and 3 interoperate;
// members at 4 or 0-and-garbage do not, and are left out with the reason.
func TestRingViewWireVersions(t *testing.T) {
	meta := func(peer string, wire int) []byte {
		b, _ := msgpack.Marshal(nodeMeta{PeerID: peer, Wire: wire})
		return b
	}
	alive := []gossip.Member{
		{Name: "old", Meta: meta("p-old", 0)},
		{Name: "n1", Meta: meta("p1", 1)},
		{Name: "n2", Meta: meta("p2", 2)},
		{Name: "n3", Meta: meta("p3", 3)},
		{Name: "n4", Meta: meta("p4", 4)},
	}
	names, byName, _, bad := ringView(alive, 2)
	if want := []string{"old", "n1", "n2", "n3"}; !slices.Equal(names, want) {
		t.Fatalf("ring members %v, want %v", names, want)
	}
	if _, ok := byName["n4"]; ok || bad["n4"] == nil {
		t.Fatalf("n4 not left out: %v %v", byName, bad)
	}
	if got, want := bad["n4"].Error(), "incompatible: speaks wire format 4, this node 2"; len(got) < len(want) || got[:len(want)] != want {
		t.Errorf("reason %q, want it to start with %q", got, want)
	}
	for _, c := range []struct {
		ours, theirs int
		ok           bool
	}{{1, 1, true}, {2, 1, true}, {1, 2, true}, {3, 1, false}, {1, 3, false}, {5, 4, true}} {
		if got := wireCompatible(c.ours, c.theirs); got != c.ok {
			t.Errorf("wireCompatible(%d, %d) = %v", c.ours, c.theirs, got)
		}
	}
}

// TestEveryAlive: a feature older releases lack (job specs in job
// records, partitions placed evenly) is used only while every alive
// member announces it; a member of an older release (its meta has no
// such field), or one whose meta this node cannot use, keeps it off.
func TestEveryAlive(t *testing.T) {
	meta := func(peer string, has bool) []byte {
		b, _ := msgpack.Marshal(nodeMeta{PeerID: peer, Wire: WireVersion, InlineSpec: has, EvenReducers: has})
		return b
	}
	// The meta of the release before the field, as it encoded it.
	older, _ := msgpack.Marshal(struct {
		PeerID string `msgpack:"p"`
		Wire   int    `msgpack:"w,omitempty"`
	}{"p-old", WireVersion})
	for _, c := range []struct {
		name  string
		alive []gossip.Member
		want  bool
	}{
		{"all new", []gossip.Member{{Name: "a", Meta: meta("pa", true)}, {Name: "b", Meta: meta("pb", true)}}, true},
		{"one alone", []gossip.Member{{Name: "a", Meta: meta("pa", true)}}, true},
		{"an older release", []gossip.Member{{Name: "a", Meta: meta("pa", true)}, {Name: "old", Meta: older}}, false},
		{"one says no", []gossip.Member{{Name: "a", Meta: meta("pa", true)}, {Name: "b", Meta: meta("pb", false)}}, false},
		{"unreadable meta", []gossip.Member{{Name: "a", Meta: meta("pa", true)}, {Name: "bad", Meta: []byte{0xc1}}}, false},
		{"no members", nil, false},
	} {
		_, byName, _, bad := ringView(c.alive, WireVersion)
		for _, f := range []struct {
			name string
			has  func(nodeMeta) bool
		}{
			{"inline specs", func(m nodeMeta) bool { return m.InlineSpec }},
			{"even reducers", func(m nodeMeta) bool { return m.EvenReducers }},
		} {
			if got := everyAlive(byName, bad, f.has); got != c.want {
				t.Errorf("%s, %s: %v, want %v", c.name, f.name, got, c.want)
			}
		}
	}
	// The older release reads the new meta: the field is ignored.
	var old struct {
		PeerID string `msgpack:"p"`
	}
	if err := msgpack.Unmarshal(meta("pa", true), &old); err != nil || old.PeerID != "pa" {
		t.Fatalf("an older release decodes the meta: %v %+v", err, old)
	}
}
