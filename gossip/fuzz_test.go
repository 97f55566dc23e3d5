package gossip

import (
	"testing"
	"time"
)

// FuzzMergeRemoteState feeds arbitrary bytes to every decode path that
// takes bytes from the wire (push/pull state and user messages). Nothing
// may panic, and whatever the store accepts must be valid.
func FuzzMergeRemoteState(f *testing.F) {
	v := Version{HLC: 1 << 50, Node: "b"}
	for _, m := range []*message{
		{Kind: kindState, Records: []Record{{Key: "file/a", Value: []byte("x"), Version: v}, {Key: "file/b", Version: v, Deleted: true}}},
		{Kind: kindRecords, Records: []Record{{Key: "job/1", Value: []byte("{}"), Version: v}}},
		{Kind: kindLeave, Node: "b"},
		{Kind: kindState},
	} {
		b, err := encodeMessage(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xc1})
	f.Add([]byte{0x81, 0xa1, 't', 0x02, 0xa1, 'r', 0xdd, 0xff, 0xff, 0xff, 0xff}) // huge array header

	f.Fuzz(func(t *testing.T, b []byte) {
		p := newTestPeer(t, "a", "", newFakeClock(), time.Hour)
		p.del.MergeRemoteState(b, false)
		p.del.MergeRemoteState(b, true)
		p.del.NotifyMsg(b)
		for _, r := range p.store.snapshot() {
			if err := validateRecord(&r); err != nil {
				t.Fatalf("store accepted an invalid record: %v", err)
			}
		}
		if _, err := p.store.Put("after", []byte("fuzz")); err != nil {
			t.Fatalf("store unusable after input: %v", err)
		}
	})
}
