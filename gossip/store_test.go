package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// testPeer is a store with its memberlist delegate and no network: tests
// move broadcasts and push/pull state between peers by hand.
type testPeer struct {
	name  string
	store *Store
	del   *delegate
	clock *fakeClock
}

func newTestPeer(t testing.TB, name, dbPath string, clock *fakeClock, ttl time.Duration) *testPeer {
	t.Helper()
	log := testLogger(t).With("node", name)
	d := &delegate{log: log, view: newView(), large: newPump[Record]()}
	d.queue = &memberlist.TransmitLimitedQueue{NumNodes: func() int { return 3 }, RetransmitMult: retransmitMult}
	s, err := openStore(storeConfig{Name: name, DBPath: dbPath, TTL: ttl, Now: clock.Now, Logger: log, OnApply: d.onApply})
	if err != nil {
		t.Fatalf("open store %s: %v", name, err)
	}
	d.store = s
	t.Cleanup(func() {
		if err := s.close(); err != nil {
			t.Errorf("close store %s: %v", name, err)
		}
		d.large.stop()
	})
	return &testPeer{name: name, store: s, del: d, clock: clock}
}

// gossipTo drains p's broadcast queue into the others' NotifyMsg and
// returns how many messages it moved.
func (p *testPeer) gossipTo(others ...*testPeer) int {
	n := 0
	for {
		msgs := p.del.GetBroadcasts(2, 1400)
		if len(msgs) == 0 {
			return n
		}
		for _, m := range msgs {
			n++
			for _, o := range others {
				o.del.NotifyMsg(bytes.Clone(m))
			}
		}
	}
}

// pushPull runs one anti-entropy round from a to b over an in-memory pipe,
// neither side stale.
func pushPull(a, b *testPeer) {
	if _, _, err := syncPair(a.store, b.store, time.Time{}, time.Time{}); err != nil {
		panic(err)
	}
}

// syncPair runs one anti-entropy round from a (horizon ha) to b (horizon
// hb) over an in-memory pipe and returns both sides' results.
func syncPair(a, b *Store, ha, hb time.Time) (ra, rb SyncResult, err error) {
	ca, cb := net.Pipe()
	defer ca.Close()
	done := make(chan error, 1)
	go func() {
		defer cb.Close()
		var err error
		rb, err = b.SyncServe(cb, hb)
		done <- err
	}()
	ra, err = a.SyncInitiate(ca, ha)
	if err != nil {
		ca.Close()
	}
	return ra, rb, errors.Join(err, <-done)
}

func mustPut(t testing.TB, s *Store, key, value string) Record {
	t.Helper()
	r, err := s.Put(key, []byte(value))
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	return r
}

func mustDelete(t testing.TB, s *Store, key string) {
	t.Helper()
	if err := s.Delete(key); err != nil {
		t.Fatalf("delete %q: %v", key, err)
	}
}

// getValue returns the live value of key, or "<none>".
func getValue(s *Store, key string) string {
	r, ok := s.Get(key)
	if !ok {
		return "<none>"
	}
	return string(r.Value)
}

func TestStoreBasics(t *testing.T) {
	p := newTestPeer(t, "a", "", newFakeClock(), time.Hour)
	s := p.store

	r := mustPut(t, s, "file/x", "1")
	if r.Key != "file/x" || string(r.Value) != "1" || r.Version.Node != "a" || r.Version.HLC == 0 || r.Deleted {
		t.Fatalf("Put returned %+v", r)
	}
	mustPut(t, s, "file/y", "2")
	mustPut(t, s, "job/1", "3")
	r2 := mustPut(t, s, "file/x", "4")
	if r2.Version.Compare(r.Version) <= 0 {
		t.Fatalf("second write %v not newer than first %v", r2.Version, r.Version)
	}
	if got := getValue(s, "file/x"); got != "4" {
		t.Fatalf("Get file/x = %q, want 4", got)
	}
	mustDelete(t, s, "file/y")
	if _, ok := s.Get("file/y"); ok {
		t.Fatal("deleted key still readable")
	}
	mustDelete(t, s, "never/written") // a tombstone for an unknown key is fine

	var keys []string
	for _, r := range s.Scan("file/") {
		keys = append(keys, r.Key)
	}
	if strings.Join(keys, ",") != "file/x" {
		t.Fatalf("Scan(file/) = %v", keys)
	}
	if n := len(s.Scan("")); n != 2 {
		t.Fatalf("Scan(\"\") has %d records, want 2", n)
	}

	// First: the least live key at or after from under the prefix,
	// skipping the tombstone of file/y.
	mustPut(t, s, "file/z", "5")
	for _, c := range []struct{ prefix, from, want string }{
		{"file/", "", "file/x"}, {"file/", "file/x", "file/x"}, {"file/", "file/x\x00", "file/z"},
		{"file/", "file/y", "file/z"}, {"file/", "file/zz", ""}, {"job/", "a", "job/1"}, {"nope/", "", ""},
	} {
		r, ok := s.First(c.prefix, c.from)
		if ok != (c.want != "") || ok && r.Key != c.want {
			t.Fatalf("First(%q, %q) = %q %v, want %q", c.prefix, c.from, r.Key, ok, c.want)
		}
	}
	mustDelete(t, s, "file/z")

	// Put copies the value.
	buf := []byte("abc")
	mustPut(t, s, "copy", string(buf))
	r3, _ := s.Put("copy2", buf)
	buf[0] = 'X'
	if string(r3.Value) != "abc" || getValue(s, "copy2") != "abc" {
		t.Fatal("Put kept the caller's buffer")
	}
}

func TestStoreLimits(t *testing.T) {
	s := newTestPeer(t, "a", "", newFakeClock(), time.Hour).store
	cases := []struct {
		name  string
		key   string
		value int
		want  error
	}{
		{"empty key", "", 1, ErrInvalidKey},
		{"key at limit", strings.Repeat("k", MaxKeyLen), 1, nil},
		{"key over limit", strings.Repeat("k", MaxKeyLen+1), 1, ErrInvalidKey},
		{"value at limit", "v1", MaxValueLen, nil},
		{"value over limit", "v2", MaxValueLen + 1, ErrTooLarge},
		{"empty value", "v3", 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Put(c.key, make([]byte, c.value))
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("Put: err = %v, want %v", err, c.want)
			}
		})
	}
	if err := s.Delete(""); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Delete(\"\") = %v, want ErrInvalidKey", err)
	}
}

func TestHLC(t *testing.T) {
	clock := newFakeClock()
	c := hlc{now: clock.Now}
	a := c.tick()
	if a>>logicalBits != uint64(clock.Now().UnixMilli()) || a&0xffff != 0 {
		t.Fatalf("first tick %x does not carry the wall clock", a)
	}
	b := c.tick()
	if b != a+1 {
		t.Fatalf("tick within a millisecond: %x after %x, want counter +1", b, a)
	}
	clock.Advance(-time.Hour) // wall clock steps back: still monotonic
	if d := c.tick(); d <= b {
		t.Fatalf("tick went back: %x after %x", d, b)
	}
	remote := (uint64(clock.Now().Add(2*time.Hour).UnixMilli()) << logicalBits) | 7
	c.observe(remote)
	if e := c.tick(); e <= remote {
		t.Fatalf("tick %x after observing %x is not newer", e, remote)
	}
	clock.Advance(10 * time.Hour) // wall clock overtakes: counter resets
	if f := c.tick(); f != uint64(clock.Now().UnixMilli())<<logicalBits {
		t.Fatalf("tick %x did not follow the wall clock", f)
	}

	v1 := Version{HLC: 5, Node: "a"}
	for _, c := range []struct {
		o    Version
		want int
	}{
		{Version{HLC: 5, Node: "a"}, 0},
		{Version{HLC: 6, Node: "a"}, -1},
		{Version{HLC: 4, Node: "z"}, 1},
		{Version{HLC: 5, Node: "b"}, -1},
		{Version{HLC: 5, Node: ""}, 1},
	} {
		if got := v1.Compare(c.o); got != c.want {
			t.Errorf("%v.Compare(%v) = %d, want %d", v1, c.o, got, c.want)
		}
	}
}

// TestLWWConvergence writes the same keys concurrently on three stores
// that cannot see each other, then lets them talk, by broadcasts or by
// push/pull, and checks that all end with the same, newest, records.
func TestLWWConvergence(t *testing.T) {
	for _, mode := range []string{"broadcast", "pushpull"} {
		t.Run(mode, func(t *testing.T) {
			clock := newFakeClock() // the same wall clock: ties go to the name
			peers := []*testPeer{
				newTestPeer(t, "a", "", clock, time.Hour),
				newTestPeer(t, "b", "", clock, time.Hour),
				newTestPeer(t, "c", "", clock, time.Hour),
			}
			var wg sync.WaitGroup
			for i, p := range peers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range 20 {
						key := fmt.Sprintf("k%02d", k)
						switch (k + i) % 3 {
						case 0:
							mustDelete(t, p.store, key)
						default:
							mustPut(t, p.store, key, fmt.Sprintf("%s-%d", p.name, k))
						}
					}
				}()
			}
			wg.Wait()

			// The expected winner of each key: the highest version written.
			want := map[string]Record{}
			for _, p := range peers {
				for _, r := range p.store.snapshot() {
					if w, ok := want[r.Key]; !ok || r.Version.Compare(w.Version) > 0 {
						want[r.Key] = r
					}
				}
			}

			switch mode {
			case "broadcast":
				for i, p := range peers {
					var others []*testPeer
					for j, o := range peers {
						if i != j {
							others = append(others, o)
						}
					}
					if n := p.gossipTo(others...); n == 0 {
						t.Fatalf("%s queued no broadcasts", p.name)
					}
				}
				// Re-broadcasts of records that won elsewhere: drain until quiet.
				for range 3 {
					for i, p := range peers {
						var others []*testPeer
						for j, o := range peers {
							if i != j {
								others = append(others, o)
							}
						}
						p.gossipTo(others...)
					}
				}
			case "pushpull":
				pushPull(peers[0], peers[1])
				pushPull(peers[1], peers[2])
				pushPull(peers[0], peers[1])
			}

			for _, p := range peers {
				got := map[string]Record{}
				for _, r := range p.store.snapshot() {
					got[r.Key] = r
				}
				if len(got) != len(want) {
					t.Fatalf("%s holds %d records, want %d", p.name, len(got), len(want))
				}
				for k, w := range want {
					g := got[k]
					if g.Version != w.Version || g.Deleted != w.Deleted || !bytes.Equal(g.Value, w.Value) {
						t.Errorf("%s: %s = %+v, want %+v", p.name, k, g, w)
					}
				}
			}
		})
	}
}

func TestTombstoneOrdering(t *testing.T) {
	clock := newFakeClock()
	a := newTestPeer(t, "a", "", clock, time.Hour)
	b := newTestPeer(t, "b", "", clock, time.Hour)

	// A tombstone beats an older write.
	mustPut(t, a.store, "k", "old")
	clock.Advance(time.Millisecond)
	mustDelete(t, b.store, "k")
	pushPull(a, b)
	for _, p := range []*testPeer{a, b} {
		if v := getValue(p.store, "k"); v != "<none>" {
			t.Fatalf("%s: k = %q after a newer delete", p.name, v)
		}
	}

	// An older write does not resurrect a newer tombstone, whichever way
	// it arrives.
	c := newTestPeer(t, "c", "", newFakeClock(), time.Hour) // clock of a: older
	c.clock.Advance(-time.Second)
	old := mustPut(t, c.store, "k", "stale")
	if old.Version.Compare(mustLookup(t, a.store, "k").Version) >= 0 {
		t.Fatal("test setup: stale write is not older")
	}
	c.gossipTo(a)
	pushPull(b, c)
	for _, p := range []*testPeer{a, b, c} {
		if v := getValue(p.store, "k"); v != "<none>" {
			t.Fatalf("%s: k = %q: a stale write resurrected a tombstone", p.name, v)
		}
	}

	// A newer write after the delete brings the key back everywhere.
	clock.Advance(time.Second)
	mustPut(t, a.store, "k", "new")
	a.gossipTo(b, c)
	for _, p := range []*testPeer{a, b, c} {
		if v := getValue(p.store, "k"); v != "new" {
			t.Fatalf("%s: k = %q, want new", p.name, v)
		}
	}
}

func mustLookup(t testing.TB, s *Store, key string) Record {
	t.Helper()
	r, ok := s.lookup(key)
	if !ok {
		t.Fatalf("no record for %q", key)
	}
	return r
}

func TestReceiveAdvancesClock(t *testing.T) {
	a := newTestPeer(t, "a", "", newFakeClock(), time.Hour)
	b := newTestPeer(t, "b", "", newFakeClock(), time.Hour)
	b.clock.Advance(30 * time.Second) // b's wall clock runs ahead, within the drift bound
	remote := mustPut(t, b.store, "k", "from-b")
	b.gossipTo(a)
	local := mustPut(t, a.store, "k", "from-a")
	if local.Version.Compare(remote.Version) <= 0 {
		t.Fatalf("write %v after receiving %v does not order after it", local.Version, remote.Version)
	}
	if v := getValue(a.store, "k"); v != "from-a" {
		t.Fatalf("k = %q, want the later local write", v)
	}
}

func TestStoreRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "records.db")
	clock := newFakeClock()
	log := testLogger(t)
	open := func() *Store {
		s, err := openStore(storeConfig{Name: "a", DBPath: path, TTL: time.Hour, Now: clock.Now, Logger: log})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	}

	s := open()
	mustPut(t, s, "file/a", "A")
	mustPut(t, s, "file/b", "B")
	mustDelete(t, s, "file/b")
	last := mustPut(t, s, "file/c", "C")
	// A record merged from another node reaches the disk in the background.
	remote := Record{Key: "file/remote", Value: []byte("R"), Version: Version{HLC: last.Version.HLC + 100, Node: "z"}}
	if n := s.merge([]Record{remote}, fromMessage); n != 1 {
		t.Fatalf("merge applied %d records, want 1", n)
	}
	if err := s.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := s.close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Put("x", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close = %v, want ErrClosed", err)
	}

	clock.Advance(-time.Minute) // even if the wall clock went back
	s = open()
	defer s.close()
	for k, want := range map[string]string{"file/a": "A", "file/b": "<none>", "file/c": "C", "file/remote": "R"} {
		if got := getValue(s, k); got != want {
			t.Errorf("after restart %s = %q, want %q", k, got, want)
		}
	}
	if r, ok := s.lookup("file/b"); !ok || !r.Deleted {
		t.Errorf("tombstone of file/b lost in restart: %+v", r)
	}
	next := mustPut(t, s, "file/d", "D")
	if next.Version.HLC <= remote.Version.HLC {
		t.Fatalf("HLC after restart %v is not past the stored %v", next.Version, remote.Version)
	}
}

func TestOpenStoreErrors(t *testing.T) {
	dir := t.TempDir()
	log := testLogger(t)
	cfg := storeConfig{Name: "a", TTL: time.Hour, Now: time.Now, Logger: log}

	cfg.DBPath = filepath.Join(dir, "missing", "records.db")
	if _, err := openStore(cfg); err == nil || !strings.Contains(err.Error(), cfg.DBPath) {
		t.Fatalf("open in a missing directory: err = %v, want one naming the path", err)
	}

	cfg.DBPath = filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(cfg.DBPath, []byte("not a bolt file at all, not at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(cfg); err == nil || !strings.Contains(err.Error(), cfg.DBPath) {
		t.Fatalf("open a corrupt file: err = %v, want one naming the path", err)
	}

	if os.Geteuid() != 0 { // root ignores permissions
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		cfg.DBPath = filepath.Join(ro, "records.db")
		if _, err := openStore(cfg); err == nil || !strings.Contains(err.Error(), cfg.DBPath) {
			t.Fatalf("open in a read-only directory: err = %v, want one naming the path", err)
		}
	}
}

func TestTombstoneExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.db")
	clock := newFakeClock()
	const ttl = time.Hour
	p := newTestPeer(t, "a", path, clock, ttl)
	mustPut(t, p.store, "keep", "1")
	mustDelete(t, p.store, "gone")
	remoteTomb := Record{Key: "gone-remote", Version: Version{HLC: mustLookup(t, p.store, "gone").Version.HLC, Node: "b"}, Deleted: true}
	p.store.merge([]Record{remoteTomb}, fromMessage)

	clock.Advance(ttl - time.Second)
	if n := p.store.expireTombstones(); n != 0 {
		t.Fatalf("expired %d tombstones before the TTL", n)
	}
	if len(p.store.snapshot()) != 3 {
		t.Fatal("push/pull state lost tombstones before the TTL")
	}

	clock.Advance(2 * time.Second)
	if got := len(p.store.snapshot()); got != 1 {
		t.Fatalf("push/pull state has %d records past the TTL, want 1 (expired tombstones are not sent)", got)
	}
	if n := p.store.expireTombstones(); n != 2 {
		t.Fatalf("expired %d tombstones, want 2", n)
	}
	if _, ok := p.store.lookup("gone"); ok {
		t.Fatal("expired tombstone still held")
	}
	// And from disk: reopen.
	if err := p.store.close(); err != nil {
		t.Fatal(err)
	}
	s, err := openStore(storeConfig{Name: "a", DBPath: path, TTL: ttl, Now: clock.Now, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if _, ok := s.lookup("gone"); ok {
		t.Fatal("expired tombstone came back from disk")
	}
	if _, ok := s.lookup("gone-remote"); ok {
		t.Fatal("expired remote tombstone came back from disk")
	}
	if getValue(s, "keep") != "1" {
		t.Fatal("live record lost")
	}
}

func TestWatch(t *testing.T) {
	clock := newFakeClock()
	p := newTestPeer(t, "a", "", clock, time.Hour)
	s := p.store
	ch, cancel := s.Watch("file/")
	all, cancelAll := s.Watch("")

	mustPut(t, s, "file/1", "a")
	mustPut(t, s, "job/1", "b")
	mustDelete(t, s, "file/1")
	remote := Record{Key: "file/2", Value: []byte("r"), Version: Version{HLC: 1 << 50, Node: "b"}}
	s.merge([]Record{remote, remote}, fromPushPull) // a duplicate is not a change

	want := []string{"file/1=a", "file/1 deleted", "file/2=r"}
	for i, w := range want {
		r := receive(t, ch, 5*time.Second, func(Record) bool { return true }, "watched change")
		got := r.Key + "=" + string(r.Value)
		if r.Deleted {
			got = r.Key + " deleted"
		}
		if got != w {
			t.Fatalf("change %d = %q, want %q", i, got, w)
		}
	}
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("watch channel still open after cancel")
	}
	mustPut(t, s, "file/3", "after cancel") // must not block

	// The unfiltered watch saw everything, and Close closes it.
	var n int
	for range 5 {
		receive(t, all, 5*time.Second, func(Record) bool { return true }, "change")
		n++
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	for range all {
	}
	cancelAll()
	if _, cancel := s.Watch(""); cancel == nil {
		t.Fatal("Watch on a closed store returned a nil cancel")
	}
}

// TestBroadcastQueue checks which changes are broadcast and that a newer
// version of a key replaces the queued older one.
func TestBroadcastQueue(t *testing.T) {
	p := newTestPeer(t, "a", "", newFakeClock(), time.Hour)
	mustPut(t, p.store, "k", "1")
	mustPut(t, p.store, "k", "2")
	if n := p.del.queue.NumQueued(); n != 1 {
		t.Fatalf("%d broadcasts queued for one key, want 1", n)
	}
	msgs := p.del.GetBroadcasts(2, 1400)
	m, err := decodeMessage(msgs[0])
	if err != nil || len(m.Records) != 1 || string(m.Records[0].Value) != "2" {
		t.Fatalf("queued broadcast = %+v, %v; want the newer record", m, err)
	}

	// Push/pull merges are not re-broadcast; merged messages are.
	p.del.queue.Reset()
	p.store.merge([]Record{{Key: "pp", Value: []byte("x"), Version: Version{HLC: 1 << 50, Node: "b"}}}, fromPushPull)
	if n := p.del.queue.NumQueued(); n != 0 {
		t.Fatalf("push/pull merge queued %d broadcasts", n)
	}
	p.store.merge([]Record{{Key: "msg", Value: []byte("x"), Version: Version{HLC: 1 << 50, Node: "b"}}}, fromMessage)
	if n := p.del.queue.NumQueued(); n != 1 {
		t.Fatalf("message merge queued %d broadcasts, want 1", n)
	}

	// A record too big for a packet goes to the reliable sender instead.
	p.del.queue.Reset()
	big := mustPut(t, p.store, "big", strings.Repeat("x", 2000))
	if n := p.del.queue.NumQueued(); n != 0 {
		t.Fatalf("big record queued as a broadcast")
	}
	got := receive(t, p.del.large.out, 5*time.Second, func(Record) bool { return true }, "large record")
	if got.Version != big.Version {
		t.Fatalf("reliable sender got %v, want %v", got.Version, big.Version)
	}
	// Its tombstone is small again.
	mustDelete(t, p.store, "big")
	if n := p.del.queue.NumQueued(); n != 1 {
		t.Fatalf("tombstone of a big record not broadcast")
	}
}

func TestMalformedInputIsDropped(t *testing.T) {
	p := newTestPeer(t, "a", "", newFakeClock(), time.Hour)
	mustPut(t, p.store, "k", "v")
	valid := func(recs ...Record) []byte {
		b, err := encodeMessage(&message{Kind: kindRecords, Records: recs})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := Record{Key: "x", Value: []byte("1"), Version: Version{HLC: 1 << 50, Node: "b"}}
	bad := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"garbage", []byte("\xc1\xff garbage")},
		{"not a map", []byte{0x93, 1, 2, 3}},
		{"unknown kind", mustEncode(t, &message{Kind: 99})},
		{"empty key", valid(good, Record{Value: []byte("1"), Version: good.Version})},
		{"zero version", valid(Record{Key: "y", Value: []byte("1")})},
		{"no writer", valid(Record{Key: "y", Version: Version{HLC: 5}})},
		{"huge HLC", valid(Record{Key: "y", Version: Version{HLC: 1 << 63, Node: "b"}})},
		{"tombstone with value", valid(Record{Key: "y", Value: []byte("1"), Version: good.Version, Deleted: true})},
		{"value too large", valid(Record{Key: "y", Value: make([]byte, MaxValueLen+1), Version: good.Version})},
		{"key too long", valid(Record{Key: strings.Repeat("y", MaxKeyLen+1), Version: good.Version})},
		{"leave without node", mustEncode(t, &message{Kind: kindLeave})},
		{"truncated", valid(good)[:10]},
	}
	before := p.store.snapshot()
	for _, c := range bad {
		p.del.NotifyMsg(c.b)
		p.del.MergeRemoteState(c.b, false)
	}
	// State in a broadcast, and records as state, are refused too.
	p.del.NotifyMsg(mustEncode(t, &message{Kind: kindState, Records: []Record{good}}))
	p.del.MergeRemoteState(valid(good), true)

	after := p.store.snapshot()
	if len(after) != len(before) || getValue(p.store, "x") != "<none>" {
		t.Fatalf("malformed input changed the store: %+v", after)
	}
}

func mustEncode(t testing.TB, m *message) []byte {
	t.Helper()
	b, err := encodeMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExportMerge(t *testing.T) {
	clock := newFakeClock()
	a := newTestPeer(t, "a", "", clock, time.Hour)
	b := newTestPeer(t, "b", "", clock, time.Hour)
	mustPut(t, a.store, "file/1", "one")
	mustPut(t, a.store, "file/2", "two")
	mustPut(t, a.store, "job/1", "job")
	mustDelete(t, a.store, "file/2")
	mustPut(t, b.store, "file/2", "stale")
	clock.Advance(time.Second)
	mustDelete(t, a.store, "file/2") // newer than b's write

	exp := a.store.Export("file/")
	if len(exp) != 2 || exp[0].Key != "file/1" || exp[1].Key != "file/2" || !exp[1].Deleted {
		t.Fatalf("Export(file/) = %+v", exp)
	}
	bad := Record{Key: "", Version: Version{HLC: 1, Node: "x"}}
	n, err := b.store.Merge(append(exp, bad))
	if n != 2 || err == nil || !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("Merge = %d, %v; want 2 applied and the invalid one reported", n, err)
	}
	if getValue(b.store, "file/1") != "one" || getValue(b.store, "file/2") != "<none>" || getValue(b.store, "job/1") != "<none>" {
		t.Fatalf("after Merge: %+v", b.store.Export(""))
	}
	if q := b.del.queue.NumQueued(); q != 1 { // only b's own earlier put
		t.Fatalf("Merge queued broadcasts: %d", q)
	}
	if n, err := b.store.Merge(exp); n != 0 || err != nil {
		t.Fatalf("second Merge = %d, %v; want nothing new", n, err)
	}
}

// TestClockBound: a record from a clock far ahead (the case, a
// version at maxHLC-2) is rejected, counted and never observed by the HLC,
// so later local writes keep valid versions that the other nodes accept.
// Records within the drift are merged as before.
func TestClockBound(t *testing.T) {
	clock := newFakeClock()
	a := newTestPeer(t, "a", "", clock, time.Hour)
	b := newTestPeer(t, "b", "", clock, time.Hour)

	poison := Record{Key: "poison", Value: []byte("x"), Version: Version{HLC: maxHLC - 2, Node: "evil"}}
	if n, err := a.store.Merge([]Record{poison}); n != 0 || err != nil {
		t.Fatalf("Merge of a record at maxHLC-2 = %d, %v; want rejected (0, nil)", n, err)
	}
	if _, ok := a.store.lookup("poison"); ok {
		t.Fatal("record from a clock far ahead was merged")
	}
	if got := a.store.Stats().RejectedAhead; got != 1 {
		t.Fatalf("RejectedAhead = %d, want 1", got)
	}
	r := mustPut(t, a.store, "after", "1")
	if err := validateRecord(&r); err != nil {
		t.Fatalf("local write after the poison has an invalid version: %v", err)
	}
	if r.Version.Time().After(clock.Now().Add(time.Second)) {
		t.Fatalf("local write carries %v, far ahead of the clock %v", r.Version.Time(), clock.Now())
	}
	a.gossipTo(b)
	if getValue(b.store, "after") != "1" {
		t.Fatal("the other node did not accept the later local write")
	}

	// Within the drift (default 1m): merged, and the clock follows.
	near := Record{Key: "near", Value: []byte("y"), Version: Version{
		HLC: uint64(clock.Now().Add(30*time.Second).UnixMilli()) << logicalBits, Node: "b"}}
	if n, _ := a.store.Merge([]Record{near}); n != 1 {
		t.Fatal("record 30s ahead was not merged")
	}
	if r := mustPut(t, a.store, "next", "2"); r.Version.Compare(near.Version) <= 0 {
		t.Fatalf("local write %v does not order after the merged %v", r.Version, near.Version)
	}
	// Just past the drift: rejected.
	far := Record{Key: "far", Value: []byte("z"), Version: Version{
		HLC: uint64(clock.Now().Add(61*time.Second).UnixMilli()) << logicalBits, Node: "b"}}
	if n, _ := a.store.Merge([]Record{far}); n != 0 {
		t.Fatal("record 61s ahead was merged")
	}
	if got := a.store.Stats().RejectedAhead; got != 2 {
		t.Fatalf("RejectedAhead = %d, want 2", got)
	}
}

// TestBadStoreFile: an empty, garbled, truncated or partly overwritten
// database file is refused with ErrBadStore (never a panic, never a silent
// empty start) and left in place untouched.
func TestBadStoreFile(t *testing.T) {
	clock := newFakeClock()
	good := filepath.Join(t.TempDir(), "good.db")
	{
		p := newTestPeer(t, "a", good, clock, time.Hour)
		for i := range 60 {
			mustPut(t, p.store, fmt.Sprintf("file/%04d", i), strings.Repeat("v", 2000))
		}
		if err := p.store.close(); err != nil {
			t.Fatal(err)
		}
	}
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	const seed = 7
	rng := rand.New(rand.NewPCG(seed, seed))
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	overwrite := func(off int) []byte { // garble 4 KiB from off
		b := bytes.Clone(goodBytes)
		copy(b[off:], garbage[:4096])
		return b
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"garbage", garbage},
		{"truncated", goodBytes[:len(goodBytes)/3]},
		{"both meta pages", overwrite(0)},
		{"a data page", overwrite(4 * 4096)},
		{"the last page", overwrite(len(goodBytes) - 4096)},
	}
	t.Logf("garbage seed %d", seed)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "meta.db")
			if err := os.WriteFile(path, c.data, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := openStore(storeConfig{Name: "a", DBPath: path, TTL: time.Hour, Now: clock.Now, Logger: testLogger(t)})
			if err == nil {
				n := len(s.snapshot())
				_ = s.close()
				if n != 60 {
					t.Fatalf("opened a damaged file as a store of %d records", n)
				}
				t.Logf("damage hit free space only: every record is there")
				return // the damage hit free space only: every record is there
			}
			if !errors.Is(err, ErrBadStore) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v; want ErrBadStore naming %s", err, path)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, c.data) {
				t.Fatal("the damaged file was modified")
			}
		})
	}
	// The sound file still opens with every record.
	s, err := openStore(storeConfig{Name: "a", DBPath: good, TTL: time.Hour, Now: clock.Now, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if n := len(s.snapshot()); n != 60 {
		t.Fatalf("sound store holds %d records, want 60", n)
	}
}

// TestRemoteChangesShareATransaction: records merged one after another
// within FlushDelay reach the disk in one transaction (one commit, its
// fsyncs), and Close writes what is still gathering.
func TestRemoteChangesShareATransaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.db")
	clock := newFakeClock()
	log := testLogger(t)
	open := func(delay time.Duration) *Store {
		s, err := openStore(storeConfig{Name: "a", DBPath: path, TTL: time.Hour, Now: clock.Now, Logger: log, FlushDelay: delay})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	}
	s := open(time.Hour)
	at := (&hlc{now: clock.Now}).tick()
	for i, k := range []string{"job/1", "tasks/1/n", "jobstate/1"} {
		r := Record{Key: k, Value: []byte(k), Version: Version{HLC: at + uint64(i), Node: "z"}}
		if n := s.merge([]Record{r}, fromMessage); n != 1 {
			t.Fatalf("merge of %s applied %d records, want 1", k, n)
		}
	}
	if c := s.Stats().DiskCommits; c != 0 {
		t.Fatalf("%d commits while the changes gather, want 0", c)
	}
	if err := s.close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if c := s.Stats().DiskCommits; c != 1 {
		t.Fatalf("%d commits for three merged records, want 1", c)
	}
	s = open(0)
	defer s.close()
	for _, k := range []string{"job/1", "tasks/1/n", "jobstate/1"} {
		if got := getValue(s, k); got != k {
			t.Errorf("after restart %s = %q, want %q", k, got, k)
		}
	}
}

// TestDeleteAll: DeleteAll tombstones every key in one disk commit per
// maxBatch keys, the tombstones survive a restart, and a bad key among
// the keys deletes none.
func TestDeleteAll(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.db")
	clock := newFakeClock()
	log := testLogger(t)
	open := func() *Store {
		s, err := openStore(storeConfig{Name: "a", DBPath: path, TTL: time.Hour, Now: clock.Now, Logger: log, FlushDelay: time.Hour})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	}
	s := open()
	n := maxBatch + 6
	keys := make([]string, n)
	at := (&hlc{now: clock.Now}).tick()
	for i := range keys {
		keys[i] = fmt.Sprintf("taskstatus/job/%05d", i)
		r := Record{Key: keys[i], Value: []byte("status"), Version: Version{HLC: at + uint64(i), Node: "z"}}
		if s.merge([]Record{r}, fromMessage) != 1 {
			t.Fatalf("merge of %s not applied", keys[i])
		}
	}
	mustPut(t, s, "job/keep", "K")
	before := s.Stats().DiskCommits // the Put's (the merges wait for FlushDelay)

	if err := s.DeleteAll([]string{keys[0], ""}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("DeleteAll with an empty key = %v, want ErrInvalidKey", err)
	}
	if got := getValue(s, keys[0]); got != "status" {
		t.Fatalf("a refused DeleteAll deleted %s (now %q)", keys[0], got)
	}
	if err := s.DeleteAll(keys); err != nil {
		t.Fatalf("DeleteAll: %v", err)
	}
	if c := s.Stats().DiskCommits - before; c != 2 {
		t.Errorf("%d disk commits to delete %d keys, want 2 (batches of %d)", c, n, maxBatch)
	}
	if got := len(s.Scan("taskstatus/")); got != 0 {
		t.Errorf("%d records left under taskstatus/", got)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAll(keys[:1]); !errors.Is(err, ErrClosed) {
		t.Fatalf("DeleteAll after close = %v, want ErrClosed", err)
	}

	s = open()
	defer s.close()
	if got := len(s.Scan("taskstatus/")); got != 0 {
		t.Errorf("after restart %d records under taskstatus/, want 0", got)
	}
	if r, ok := s.lookup(keys[n-1]); !ok || !r.Deleted {
		t.Errorf("tombstone of %s lost in restart: %+v", keys[n-1], r)
	}
	if got := getValue(s, "job/keep"); got != "K" {
		t.Errorf("job/keep = %q after restart", got)
	}
}

// BenchmarkDelete deletes 1,000 keys from a store on disk, one Delete
// each (a commit each) or with one DeleteAll.
func BenchmarkDelete(b *testing.B) {
	const n = 1000
	for _, way := range []string{"one-by-one", "all"} {
		b.Run(way, func(b *testing.B) {
			s, err := openStore(storeConfig{Name: "a", DBPath: filepath.Join(b.TempDir(), "records.db"), TTL: time.Hour, Now: time.Now, Logger: testLogger(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.close()
			keys := make([]string, n)
			for i := range keys {
				keys[i] = fmt.Sprintf("taskstatus/job/%05d", i)
			}
			for i := 0; i < b.N; i++ {
				if way == "all" {
					if err := s.DeleteAll(keys); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for _, k := range keys {
					if err := s.Delete(k); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
		})
	}
}
