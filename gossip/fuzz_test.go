package gossip

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
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

// FuzzSyncServe feeds arbitrary bytes to the anti-entropy server's frame
// decoding. Nothing may panic, and whatever the store accepts must be
// valid.
func FuzzSyncServe(f *testing.F) {
	v := Version{HLC: 1 << 50, Node: "b"}
	var seed []byte
	for _, m := range []*syncMsg{
		{Kind: syncHello, Version: syncProtoVersion, Root: 1},
		{Kind: syncWant, Buckets: make([]byte, DigestBuckets/8)},
		{Kind: syncBatch, Records: []Record{{Key: "file/a", Value: []byte("x"), Version: v}}, End: true},
	} {
		b, err := msgpack.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		seed = binary.BigEndian.AppendUint32(seed, uint32(len(b)))
		seed = append(seed, b...)
	}
	f.Add(seed)
	f.Add([]byte{0, 0, 0, 1, 0xc1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p := newTestPeer(t, "a", "", newFakeClock(), time.Hour)
		_, _ = p.store.syncServe(newSyncConn(&rwPair{r: bytes.NewReader(b)}), time.Time{})
		for _, r := range p.store.snapshot() {
			if err := validateRecord(&r); err != nil {
				t.Fatalf("store accepted an invalid record: %v", err)
			}
		}
	})
}
