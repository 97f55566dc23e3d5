package claim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/mesh"
	"shoal.dev/shoal/mesh/meshtest"
	"shoal.dev/shoal/ring"
)

// memRecords is a record store of one node, enough for the service.
type memRecords struct {
	self string
	mu   sync.Mutex
	hlc  uint64
	recs map[string]gossip.Record
}

func (m *memRecords) Get(key string) (gossip.Record, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[key]
	return r, ok
}

func (m *memRecords) Put(key string, value []byte) (gossip.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hlc++
	r := gossip.Record{Key: key, Value: value, Version: gossip.Version{HLC: m.hlc, Node: m.self}}
	m.recs[key] = r
	return r, nil
}

func (m *memRecords) Merge(recs []gossip.Record) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		m.recs[r.Key] = r
	}
	return len(recs), nil
}

// fakeClock is the shared clock of a test: it moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return origin.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

type testNode struct {
	name string
	mesh *meshtest.Node
	ring atomic.Pointer[ring.Ring]
	recs *memRecords
	svc  *Service
}

// testTTL is long in real time so that no background renewal runs: the
// tests renew by hand and move the fake clock.
const testTTL = time.Hour

func startNodes(t *testing.T, clock *fakeClock, names ...string) map[string]*testNode {
	t.Helper()
	net := meshtest.New()
	all := ring.New(ring.Config{}, names...)
	nodes := map[string]*testNode{}
	for _, name := range names {
		mn, err := net.Add(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(mn.Close)
		n := &testNode{name: name, mesh: mn, recs: &memRecords{self: name, recs: map[string]gossip.Record{}}}
		n.ring.Store(all)
		n.svc, err = New(Config{
			Self:    name,
			Ring:    n.ring.Load,
			Dialer:  mn,
			Records: n.recs,
			Check: func(_ Kind, p string) error {
				if _, ok := n.recs.Get("file/" + p); ok {
					return fmt.Errorf("%s exists", p)
				}
				return nil
			},
			TTL:            testTTL,
			ReserveTimeout: testTTL,
			Now:            clock.Now,
			Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		mn.Handle(Protocol, n.svc.Handle)
		nodes[name] = n
	}
	return nodes
}

// pathWithPrimaries finds a path whose primary is first on the whole ring
// and second once first is gone.
func pathWithPrimaries(t *testing.T, members []string, first, second string) string {
	t.Helper()
	all := ring.New(ring.Config{}, members...)
	rest := all.Without(first)
	for i := 0; i < 10000; i++ {
		p := fmt.Sprintf("/f%d", i)
		if all.Owner(Key(p)) == first && rest.Owner(Key(p)) == second {
			return p
		}
	}
	t.Fatalf("no path with primaries %s then %s", first, second)
	return ""
}

// quickly bounds a reserve that must not be granted yet in real time.
func quickly() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 300*time.Millisecond)
}

// TestFailoverOfThePrimary: the primary of a path dies while a writer holds
// the path. The next owner grants nothing for a TTL, adopts the writer's
// renewal, refuses the other writer, and writes the record when the first
// commits.
func TestFailoverOfThePrimary(t *testing.T) {
	clock := &fakeClock{}
	names := []string{"a", "b", "c"}
	nodes := startNodes(t, clock, names...)
	ctx := context.Background()
	p := pathWithPrimaries(t, names, "a", "b")

	// Every node just started: nothing is granted for a TTL.
	qctx, cancel := quickly()
	_, err := nodes["c"].svc.Reserve(qctx, KindFile, p)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "only just became") {
		t.Fatalf("reserve right after start: %v", err)
	}
	clock.Advance(testTTL)

	held, err := nodes["c"].svc.Reserve(ctx, KindFile, p)
	if err != nil {
		t.Fatalf("reserve at the primary: %v", err)
	}
	defer held.Release()
	_, err = nodes["b"].svc.Reserve(ctx, KindFile, p)
	var ref *Refused
	if !errors.As(err, &ref) || !ref.Busy || ref.Holder != "c" {
		t.Fatalf("a second writer: %v, want busy, held by c", err)
	}

	// a dies; b and c see it a moment later.
	nodes["a"].mesh.SetDown(true)
	clock.Advance(time.Minute)
	for _, n := range []string{"b", "c"} {
		nodes[n].ring.Store(ring.New(ring.Config{}, "b", "c"))
		nodes[n].svc.RingChanged()
	}
	qctx, cancel = quickly()
	_, err = nodes["b"].svc.Reserve(qctx, KindFile, p)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "only just became") {
		t.Fatalf("reserve at the new primary within a TTL: %v", err)
	}
	// The holder's renewal reaches b, which adopts it.
	clock.Advance(time.Minute)
	if ok, err := held.renew(context.Background()); !ok || err != nil {
		t.Fatalf("renewal at the new primary: %v %v", ok, err)
	}
	clock.Advance(testTTL - time.Minute) // b has settled; c's lease still runs
	_, err = nodes["b"].svc.Reserve(ctx, KindFile, p)
	if !errors.As(err, &ref) || !ref.Busy || ref.Holder != "c" {
		t.Fatalf("a second writer after the takeover: %v, want busy, held by c", err)
	}
	rec, err := held.Commit(ctx, "file/"+p, []byte("c's file"))
	if err != nil {
		t.Fatalf("commit at the new primary: %v", err)
	}
	if got, ok := nodes["b"].recs.Get("file/" + p); !ok || string(got.Value) != "c's file" || got.Version != rec.Version {
		t.Fatalf("b's record: %+v %v", got, ok)
	}
	if got, ok := nodes["c"].recs.Get("file/" + p); !ok || got.Version != rec.Version {
		t.Fatalf("the writer did not merge its record: %+v %v", got, ok)
	}
	_, err = nodes["b"].svc.Reserve(ctx, KindFile, p)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("reserve of the created path: %v", err)
	}
}

// TestDeadWriterExpires: a writer that stops renewing loses the path after
// a TTL; its late commit writes nothing.
func TestDeadWriterExpires(t *testing.T) {
	clock := &fakeClock{}
	names := []string{"a", "b", "c"}
	nodes := startNodes(t, clock, names...)
	ctx := context.Background()
	clock.Advance(testTTL)
	p := pathWithPrimaries(t, names, "b", "c")

	dead, err := nodes["a"].svc.Reserve(ctx, KindFile, p)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(testTTL)
	live, err := nodes["c"].svc.Reserve(ctx, KindFile, p)
	if err != nil {
		t.Fatalf("reserve after the holder's lease ran out: %v", err)
	}
	if _, err := dead.Commit(ctx, "file/"+p, []byte("late")); !errors.Is(err, ErrLost) {
		t.Fatalf("a lapsed writer's commit: %v, want ErrLost", err)
	}
	if _, err := live.Commit(ctx, "file/"+p, []byte("live")); err != nil {
		t.Fatal(err)
	}
	if got, _ := nodes["b"].recs.Get("file/" + p); string(got.Value) != "live" {
		t.Fatalf("record %q, want the live writer's", got.Value)
	}
	dead.Release()
	live.Release()
}

// TestBadRequestsOnTheWire: malformed, oversized and wrong-version
// requests are refused by resetting the stream; the service goes on.
func TestBadRequestsOnTheWire(t *testing.T) {
	clock := &fakeClock{}
	nodes := startNodes(t, clock, "a", "b")
	clock.Advance(testTTL)
	ctx := context.Background()
	send := func(write func(s mesh.Stream) error) error {
		s, err := nodes["a"].mesh.Dial(ctx, "b", Protocol)
		if err != nil {
			return err
		}
		defer s.Close()
		s.SetDeadline(time.Now().Add(5 * time.Second))
		if err := write(s); err != nil {
			return err
		}
		var ans answer
		return mesh.ReadMsg(s, &ans, maxAnswer)
	}
	good := request{V: wireVersion, Op: OpReserve, Kind: KindFile, Path: "/x", Token: "t"}
	bad := map[string]func(s mesh.Stream) error{
		"garbage":        func(s mesh.Stream) error { _, err := s.Write([]byte{0, 0, 0, 3, 0xc1, 0xc1, 0xc1}); return err },
		"oversized":      func(s mesh.Stream) error { _, err := s.Write([]byte{0x7f, 0xff, 0xff, 0xff}); return err },
		"version 2":      func(s mesh.Stream) error { r := good; r.V = 2; return mesh.WriteMsg(s, r) },
		"unknown op":     func(s mesh.Stream) error { r := good; r.Op = 9; return mesh.WriteMsg(s, r) },
		"unknown kind":   func(s mesh.Stream) error { r := good; r.Kind = "dir"; return mesh.WriteMsg(s, r) },
		"relative path":  func(s mesh.Stream) error { r := good; r.Path = "x"; return mesh.WriteMsg(s, r) },
		"no token":       func(s mesh.Stream) error { r := good; r.Token = ""; return mesh.WriteMsg(s, r) },
		"empty commit":   func(s mesh.Stream) error { r := good; r.Op = OpCommit; return mesh.WriteMsg(s, r) },
		"truncated body": func(s mesh.Stream) error { _, err := s.Write([]byte{0, 0, 0, 9, 0x81}); s.CloseWrite(); return err },
	}
	for name, write := range bad {
		if err := send(write); err == nil {
			t.Errorf("%s: answered", name)
		}
	}
	if err := send(func(s mesh.Stream) error { return mesh.WriteMsg(s, good) }); err != nil {
		t.Fatalf("a good request after the bad ones: %v", err)
	}
}

// timerWait is a timer the renewal loop armed through Service.after.
type timerWait struct {
	d    time.Duration
	fire chan time.Time
}

// fakeTimers makes svc's renewal loops arm their timers on the channel it
// returns, where the test fires them.
func fakeTimers(svc *Service) chan timerWait {
	waits := make(chan timerWait, 64)
	svc.after = func(d time.Duration) <-chan time.Time {
		w := timerWait{d: d, fire: make(chan time.Time, 1)}
		waits <- w
		return w.fire
	}
	return waits
}

// renewalsDue fires the first n-1 renewal timers of res in turn, moving
// clock to each, and returns when each of the n was due: the first after
// the grant, each next one after the renewal before it was answered. The
// loop arms a retry timer (a tenth of a TTL) with every request it sends;
// those are not fired. The last timer is not fired: the loop then waits on
// it or for Commit.
func renewalsDue(t *testing.T, clock *fakeClock, waits chan timerWait, res *Reservation, n int) []time.Duration {
	t.Helper()
	var due []time.Duration
	for i := range n {
		var w timerWait
		for w.fire == nil || w.d == res.s.cfg.TTL/10 {
			select {
			case w = <-waits:
			case <-res.done:
				t.Fatalf("renewals due in %v; the renewal loop then ended: %v", due, res.lost)
			}
		}
		due = append(due, w.d)
		if i < n-1 {
			clock.Advance(w.d)
			w.fire <- clock.Now()
		}
	}
	return due
}

// soleNode starts a one-node cluster on clock whose pull of a path's
// records before a new reservation moves the clock by syncTakes; checks
// counts the primary's checks of its records.
func soleNode(t *testing.T, clock *fakeClock, ttl, syncTakes time.Duration) (svc *Service, checks *atomic.Int32) {
	t.Helper()
	net := meshtest.New()
	mn, err := net.Add("a")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mn.Close)
	checks = &atomic.Int32{}
	svc, err = New(Config{
		Self:           "a",
		Ring:           func() *ring.Ring { return ring.New(ring.Config{}, "a") },
		Dialer:         mn,
		Records:        &memRecords{self: "a", recs: map[string]gossip.Record{}},
		Check:          func(Kind, string) error { checks.Add(1); return nil },
		Sync:           func(context.Context, Kind, string) { clock.Advance(syncTakes) },
		TTL:            ttl,
		ReserveTimeout: ttl,
		Now:            clock.Now,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc, checks
}

// TestSlowSyncDoesNotEatTheLease: the primary's pull of the path's
// records before it grants takes longer than a TTL (a member that does not
// answer the pull holds it for metaSyncTimeout, 3 s, which is the whole
// lease with --fast-gossip). The primary's lease starts when it decides,
// and it says how long it held the request; the writer must count its
// lease from there, not from when it asked, which had it lapse before the
// answer arrived ("the reservation of /many-out lapsed"). The first renewal
// is due a third of a TTL after the grant, and the commit succeeds.
func TestSlowSyncDoesNotEatTheLease(t *testing.T) {
	const ttl = 10 * time.Second
	clock := &fakeClock{}
	svc, _ := soleNode(t, clock, ttl, ttl+2*time.Second)
	waits := fakeTimers(svc)
	clock.Advance(ttl) // settled
	res, err := svc.Reserve(context.Background(), KindOutput, "/many-out")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	third := ttl - 2*ttl/3
	if due := renewalsDue(t, clock, waits, res, 2); !slices.Equal(due, []time.Duration{third, third}) {
		t.Fatalf("renewals due in %v, want %v", due, []time.Duration{third, third})
	}
	if _, err := res.Commit(context.Background(), "job/x", []byte("job")); err != nil {
		t.Fatalf("commit after a slow grant: %v", err)
	}
}

// slowAnswers delays, on the fake clock, the answer of the first stream
// it opens by delay: the reply to a reservation is slow to reach the writer
// (a loaded node, a slow link), which the primary cannot see.
type slowAnswers struct {
	mesh.Dialer
	clock  *fakeClock
	delay  time.Duration
	dialed atomic.Int32
}

func (d *slowAnswers) Dial(ctx context.Context, to mesh.NodeName, protocol string) (mesh.Stream, error) {
	st, err := d.Dialer.Dial(ctx, to, protocol)
	if err != nil || d.dialed.Add(1) > 1 {
		return st, err
	}
	return &lateStream{Stream: st, late: func() { d.clock.Advance(d.delay) }}, nil
}

type lateStream struct {
	mesh.Stream
	once sync.Once
	late func()
}

func (s *lateStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	s.once.Do(s.late)
	return n, err
}

// TestSlowGrantIsRenewedInTime: the primary's answer to a reservation is
// slow to reach the writer (8 of the TTL's 10 s on the way back), so the
// writer, which counts the lease from when it asked, gets the reservation
// with little of it left. The first renewal must come before that little
// runs out, not a third of a TTL after the answer; the check of the
// records is not repeated for a renewal of a live reservation.
func TestSlowGrantIsRenewedInTime(t *testing.T) {
	const ttl = 10 * time.Second
	clock := &fakeClock{}
	net := meshtest.New()
	all := ring.New(ring.Config{}, "a", "b")
	var p string
	for i := 0; p == ""; i++ {
		if q := fmt.Sprintf("/many-out-%d", i); all.Owner(Key(q)) == "a" {
			p = q
		}
	}
	var checks atomic.Int32
	svcs := map[string]*Service{}
	for _, name := range []string{"a", "b"} {
		mn, err := net.Add(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(mn.Close)
		svc, err := New(Config{
			Self: name, Ring: func() *ring.Ring { return all },
			Dialer:  &slowAnswers{Dialer: mn, clock: clock, delay: 8 * time.Second},
			Records: &memRecords{self: name, recs: map[string]gossip.Record{}},
			Check:   func(Kind, string) error { checks.Add(1); return nil },
			TTL:     ttl, ReserveTimeout: ttl, Now: clock.Now,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		mn.Handle(Protocol, svc.Handle)
		svcs[name] = svc
	}
	waits := fakeTimers(svcs["b"])
	clock.Advance(ttl) // settled
	res, err := svcs["b"].Reserve(context.Background(), KindOutput, p)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	checked := checks.Load()
	// The grant left 2 s of the lease: the first renewal is due at once.
	// Each renewal answered makes the next one due a third of a TTL on.
	third := ttl - 2*ttl/3
	if due := renewalsDue(t, clock, waits, res, 3); !slices.Equal(due, []time.Duration{0, third, third}) {
		t.Fatalf("renewals due in %v, want %v", due, []time.Duration{0, third, third})
	}
	if n := checks.Load() - checked; n != 0 {
		t.Errorf("the primary checked the records %d times for renewals of a live reservation", n)
	}
	if _, err := res.Commit(context.Background(), "job/x", []byte("job")); err != nil {
		t.Fatalf("commit after renewals: %v", err)
	}
}

// TestLeaseEnd: the writer counts the primary's hold before deciding, but
// never more of it than the round trip took.
func TestLeaseEnd(t *testing.T) {
	sent := origin
	for _, tc := range []struct {
		name      string
		roundTrip time.Duration
		heldMS    int64
		want      time.Duration // after sent
	}{
		{"a primary that does not say", 5 * time.Second, 0, 10 * time.Second},
		{"held within the round trip", 5 * time.Second, 4000, 14 * time.Second},
		{"held the whole round trip", 5 * time.Second, 5000, 15 * time.Second},
		{"says it held longer than the round trip", 5 * time.Second, 60_000, 15 * time.Second},
		{"says a negative hold", 5 * time.Second, -3000, 10 * time.Second},
	} {
		got := leaseEnd(sent, sent.Add(tc.roundTrip), answer{TTLMS: 10_000, HeldMS: tc.heldMS})
		if !got.Equal(sent.Add(tc.want)) {
			t.Errorf("%s: lease ends %v after sending, want %v", tc.name, got.Sub(sent), tc.want)
		}
	}
}

// slowDialer delays the first read of every stream it opens by delay: the
// answers of a slow primary (a loaded node, a slow link).
type slowDialer struct {
	mesh.Dialer
	delay time.Duration
}

func (d slowDialer) Dial(ctx context.Context, to mesh.NodeName, protocol string) (mesh.Stream, error) {
	st, err := d.Dialer.Dial(ctx, to, protocol)
	if err != nil {
		return nil, err
	}
	return &slowStream{Stream: st, delay: d.delay, reset: make(chan struct{})}, nil
}

type slowStream struct {
	mesh.Stream
	delay     time.Duration
	waited    bool
	reset     chan struct{}
	resetOnce sync.Once
}

func (s *slowStream) Read(p []byte) (int, error) {
	if !s.waited {
		s.waited = true
		t := time.NewTimer(s.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.reset:
			return 0, errors.New("stream reset")
		}
	}
	return s.Stream.Read(p)
}

func (s *slowStream) Reset() error {
	s.resetOnce.Do(func() { close(s.reset) })
	return s.Stream.Reset()
}

// TestSlowPrimaryStillRenews: every answer of the primary takes 0.35 of a
// TTL to reach the writer, more than a third of it. A renewal must not be
// given up before the lease lapses (each was cut off at a third of a TTL,
// so a primary that slow could never renew, and the reservation lapsed);
// the writer keeps its reservation through two renewals and commits.
func TestSlowPrimaryStillRenews(t *testing.T) {
	const (
		ttl   = 6 * time.Second
		delay = 35 * ttl / 100
	)
	var offset atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	net := meshtest.New()
	all := ring.New(ring.Config{}, "a", "b")
	var p string
	for i := 0; p == ""; i++ {
		if q := fmt.Sprintf("/slow%d", i); all.Owner(Key(q)) == "a" {
			p = q
		}
	}
	svcs := map[string]*Service{}
	recs := map[string]*memRecords{}
	for _, name := range []string{"a", "b"} {
		mn, err := net.Add(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(mn.Close)
		recs[name] = &memRecords{self: name, recs: map[string]gossip.Record{}}
		svc, err := New(Config{
			Self: name, Ring: func() *ring.Ring { return all },
			Dialer:  slowDialer{Dialer: mn, delay: delay},
			Records: recs[name],
			Check:   func(Kind, string) error { return nil },
			TTL:     ttl, Now: now,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		mn.Handle(Protocol, svc.Handle)
		svcs[name] = svc
	}
	renewed := make(chan time.Time, 16)
	svcs["b"].renewed = func(l time.Time) { renewed <- l }
	offset.Add(int64(ttl)) // both have been primaries for a TTL: settled
	res, err := svcs["b"].Reserve(context.Background(), KindFile, p)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Release()
	for i := range 2 {
		select {
		case <-renewed:
		case <-res.done:
			t.Fatalf("after %d renewals: %v", i, res.lost)
		case <-time.After(3 * ttl):
			t.Fatalf("no renewal answered within %v", 3*ttl)
		}
	}
	if _, err := res.Commit(context.Background(), "file/"+p, []byte("slow")); err != nil {
		t.Fatalf("commit after renewals through a slow primary: %v", err)
	}
	if got, ok := recs["a"].Get("file/" + p); !ok || string(got.Value) != "slow" {
		t.Fatalf("the primary's record: %+v %v", got, ok)
	}
}
