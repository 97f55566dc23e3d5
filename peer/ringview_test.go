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
	names, byName, byPeer, bad := ringView(alive)
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
