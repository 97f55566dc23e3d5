package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// testConfig is LocalConfig on loopback with a free port and a test logger.
func testConfig(t testing.TB, name string) Config {
	c := LocalConfig()
	c.Name = name
	c.Logger = testLogger(t).With("test", t.Name())
	c.SyncDial = testSyncNet(t).dial(name)
	return c
}

// syncNet connects the anti-entropy streams of one test's nodes in memory.
type syncNet struct {
	mu    sync.Mutex
	nodes map[string]*Node
}

var syncNets sync.Map // testing.TB -> *syncNet

func testSyncNet(t testing.TB) *syncNet {
	v, loaded := syncNets.LoadOrStore(t, &syncNet{nodes: map[string]*Node{}})
	if !loaded {
		t.Cleanup(func() { syncNets.Delete(t) })
	}
	return v.(*syncNet)
}

func (sn *syncNet) add(n *Node) {
	sn.mu.Lock()
	sn.nodes[n.Name()] = n
	sn.mu.Unlock()
}

func (sn *syncNet) dial(from string) SyncDialFunc {
	return func(ctx context.Context, member string) (SyncStream, error) {
		sn.mu.Lock()
		n := sn.nodes[member]
		sn.mu.Unlock()
		if n == nil {
			return nil, fmt.Errorf("no node %s", member)
		}
		a, b := net.Pipe()
		go n.ServeSync(from, b)
		return a, nil
	}
}

// startNode starts a node that the test shuts down at its end.
func startNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("new node %s: %v", cfg.Name, err)
	}
	testSyncNet(t).add(n)
	t.Cleanup(func() {
		if err := n.Shutdown(); err != nil {
			t.Errorf("shutdown %s: %v", cfg.Name, err)
		}
	})
	return n
}

// startCluster starts size nodes named node-0…, joins them all through
// node-0 and waits until every node sees every other alive. mutate, if not
// nil, adjusts each node's config.
func startCluster(t testing.TB, size int, mutate func(i int, c *Config)) []*Node {
	t.Helper()
	nodes := make([]*Node, size)
	for i := range size {
		cfg := testConfig(t, fmt.Sprintf("node-%d", i))
		if mutate != nil {
			mutate(i, &cfg)
		}
		nodes[i] = startNode(t, cfg)
	}
	for _, n := range nodes[1:] {
		joinOK(t, n, nodes[0].Addr())
	}
	waitAlive(t, nodes, nodes)
	return nodes
}

func joinOK(t testing.TB, n *Node, addrs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Join(ctx, addrs); err != nil {
		t.Fatalf("%s join %v: %v", n.Name(), addrs, err)
	}
}

// waitAlive waits until each of observers sees exactly want alive.
func waitAlive(t testing.TB, observers, want []*Node) {
	t.Helper()
	var names []string
	for _, n := range want {
		names = append(names, n.Name())
	}
	wantS := strings.Join(names, ",")
	for _, o := range observers {
		eventually(t, 10*time.Second, func() bool { return memberNames(o.Alive()) == wantS },
			"%s sees alive %s, want %s", o.Name(), memberNames(o.Alive()), wantS)
	}
}

func memberNames(ms []Member) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name)
	}
	return strings.Join(s, ",")
}

func memberState(n *Node, name string) (State, bool) {
	for _, m := range n.Members() {
		if m.Name == name {
			return m.State, true
		}
	}
	return 0, false
}

func TestClusterRecordsByBroadcast(t *testing.T) {
	// Push/pull only at join: anything that arrives later came by broadcast
	// or reliable send.
	nodes := startCluster(t, 4, func(_ int, c *Config) { c.PushPullInterval = time.Hour })

	for _, n := range nodes {
		ms := n.Members()
		if memberNames(ms) != "node-0,node-1,node-2,node-3" {
			t.Fatalf("%s: Members = %s", n.Name(), memberNames(ms))
		}
		for _, m := range ms {
			if m.State != StateAlive || m.Addr == "" {
				t.Fatalf("%s: member %+v", n.Name(), m)
			}
			if m.Name == n.Name() && m.Addr != n.Addr() {
				t.Fatalf("%s lists itself at %s, Addr() = %s", n.Name(), m.Addr, n.Addr())
			}
		}
	}

	watches := make([]<-chan Record, len(nodes))
	for i, n := range nodes {
		ch, cancel := n.Records().Watch("file/")
		t.Cleanup(cancel)
		watches[i] = ch
	}
	expect := func(what string, match func(Record) bool) {
		t.Helper()
		for i, ch := range watches {
			receive(t, ch, 10*time.Second, match, fmt.Sprintf("%s on %s", what, nodes[i].Name()))
		}
	}

	small, err := nodes[1].Records().Put("file/small", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	expect("small record", func(r Record) bool { return r.Key == "file/small" && r.Version == small.Version })

	// Too big for a UDP packet: sent reliably to every member.
	big, err := nodes[2].Records().Put("file/big", bytes.Repeat([]byte("x"), 16<<10))
	if err != nil {
		t.Fatal(err)
	}
	expect("big record", func(r Record) bool { return r.Key == "file/big" && r.Version == big.Version })

	if err := nodes[3].Records().Delete("file/small"); err != nil {
		t.Fatal(err)
	}
	expect("tombstone", func(r Record) bool { return r.Key == "file/small" && r.Deleted })

	for _, n := range nodes {
		recs := n.Records().Scan("file/")
		if len(recs) != 1 || recs[0].Key != "file/big" || len(recs[0].Value) != 16<<10 {
			t.Fatalf("%s: Scan(file/) = %d records", n.Name(), len(recs))
		}
	}
}

func TestFailureDetection(t *testing.T) {
	const size = 4
	nodes := startCluster(t, size, nil)
	victim := nodes[size-1]
	survivors := nodes[:size-1]
	events := make([]<-chan MemberEvent, len(survivors))
	for i, n := range survivors {
		ch, cancel := n.Subscribe()
		t.Cleanup(cancel)
		events[i] = ch
	}

	bound := testConfig(t, "x").FailureDetectionTime(size)
	start := time.Now()
	if err := victim.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range events {
		remaining := bound - time.Since(start)
		ev := receive(t, ch, remaining, func(e MemberEvent) bool {
			return e.Member.Name == victim.Name() && e.Type != EventUpdate
		}, fmt.Sprintf("failure of %s seen by %s", victim.Name(), survivors[i].Name()))
		if ev.Type != EventFail || ev.Member.State != StateDead {
			t.Fatalf("%s saw %v, want a failure", survivors[i].Name(), ev)
		}
	}
	t.Logf("all survivors saw the failure after %v (bound %v)", time.Since(start).Round(time.Millisecond), bound)
	for _, n := range survivors {
		if s, _ := memberState(n, victim.Name()); s != StateDead {
			t.Fatalf("%s: %s is %v, want dead", n.Name(), victim.Name(), s)
		}
		if len(n.Members()) != size || len(n.Alive()) != size-1 {
			t.Fatalf("%s: %d members, %d alive", n.Name(), len(n.Members()), len(n.Alive()))
		}
	}
}

func TestGracefulLeave(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	leaver := nodes[2]
	events := make([]<-chan MemberEvent, 2)
	for i, n := range nodes[:2] {
		ch, cancel := n.Subscribe()
		t.Cleanup(cancel)
		events[i] = ch
	}

	if err := leaver.Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := leaver.Leave(time.Second); err != nil {
		t.Fatalf("second Leave: %v", err)
	}
	if s, _ := memberState(leaver, leaver.Name()); s != StateLeft {
		t.Fatalf("leaver sees itself %v", s)
	}
	if err := leaver.Join(context.Background(), []string{nodes[0].Addr()}); !errors.Is(err, ErrLeft) {
		t.Fatalf("Join after Leave = %v, want ErrLeft", err)
	}
	if err := leaver.SetMeta([]byte("x")); !errors.Is(err, ErrLeft) {
		t.Fatalf("SetMeta after Leave = %v, want ErrLeft", err)
	}
	if err := leaver.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range events {
		ev := receive(t, ch, 10*time.Second, func(e MemberEvent) bool {
			return e.Member.Name == leaver.Name() && e.Type != EventUpdate
		}, "leave event on "+nodes[i].Name())
		if ev.Type != EventLeave || ev.Member.State != StateLeft {
			// The notice lost the race with memberlist's own leave
			// message: allowed, but then a correction must follow.
			t.Logf("%s saw %v before the leave", nodes[i].Name(), ev)
			receive(t, ch, 10*time.Second, func(e MemberEvent) bool {
				return e.Member.Name == leaver.Name() && e.Type == EventLeave && e.Member.State == StateLeft
			}, "leave event on "+nodes[i].Name())
		}
	}
	for _, n := range nodes[:2] {
		if s, _ := memberState(n, leaver.Name()); s != StateLeft {
			t.Fatalf("%s sees %s %v, want left", n.Name(), leaver.Name(), s)
		}
	}
	waitAlive(t, nodes[:2], nodes[:2])
	if err := leaver.Leave(time.Second); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Leave after Shutdown = %v, want ErrShutdown", err)
	}
}

// TestPushPullConvergence: a record that no broadcast carries still
// reaches everyone by periodic push/pull.
func TestPushPullConvergence(t *testing.T) {
	nodes := startCluster(t, 3, func(_ int, c *Config) { c.SyncInterval = 300 * time.Millisecond })
	r := Record{Key: "job/quiet", Value: []byte("v"), Version: Version{HLC: uint64(time.Now().UnixMilli()) << logicalBits, Node: "elsewhere"}}
	if n := nodes[0].Records().merge([]Record{r}, fromPushPull); n != 1 {
		t.Fatal("record not merged")
	}
	if q := nodes[0].del.queue.NumQueued(); q != 0 {
		t.Fatalf("test setup: %d broadcasts queued", q)
	}
	for _, n := range nodes[1:] {
		eventually(t, 10*time.Second, func() bool { return getValue(n.Records(), "job/quiet") == "v" },
			"%s did not get the record by anti-entropy", n.Name())
	}
}

// TestRestartCatchesUp: a node that was down while a record was written,
// and that kept its own records on disk, gets the new record when it
// rejoins (push/pull at join) and the others still have its old ones.
func TestRestartCatchesUp(t *testing.T) {
	dir := t.TempDir()
	dbPath := func(i int) string { return filepath.Join(dir, fmt.Sprintf("node-%d.db", i)) }
	nodes := startCluster(t, 3, func(i int, c *Config) {
		c.DBPath = dbPath(i)
		c.PushPullInterval = time.Hour // only the join's push/pull
	})
	if _, err := nodes[2].Records().Put("file/before", []byte("1")); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() bool { return getValue(n.Records(), "file/before") == "1" }, "%s lacks file/before", n.Name())
	}

	// node-2 goes away; meanwhile a record is written and one deleted.
	if err := nodes[2].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitAlive(t, nodes[:2], nodes[:2])
	if _, err := nodes[0].Records().Put("file/while-down", []byte("2")); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].Records().Delete("file/before"); err != nil {
		t.Fatal(err)
	}
	// node-2 will rejoin through node-0: let the delete reach it first.
	eventually(t, 10*time.Second, func() bool { return getValue(nodes[0].Records(), "file/before") == "<none>" },
		"node-0 did not get the delete")

	cfg := testConfig(t, "node-2")
	cfg.DBPath = dbPath(2)
	cfg.PushPullInterval = time.Hour
	back := startNode(t, cfg)
	if got := getValue(back.Records(), "file/before"); got != "1" {
		t.Fatalf("restarted node lost its record: %q", got)
	}
	joinOK(t, back, nodes[0].Addr())
	// The join triggers an anti-entropy round with every member.
	eventually(t, 10*time.Second, func() bool {
		return getValue(back.Records(), "file/while-down") == "2" && getValue(back.Records(), "file/before") == "<none>"
	}, "after join, file/while-down = %q (want 2), deleted file/before = %q",
		getValue(back.Records(), "file/while-down"), getValue(back.Records(), "file/before"))
	eventually(t, 10*time.Second, back.Synced, "the restarted node is not in sync")
	waitAlive(t, []*Node{nodes[0], nodes[1], back}, []*Node{nodes[0], nodes[1], back})
}

func TestSetMeta(t *testing.T) {
	nodes := startCluster(t, 2, func(i int, c *Config) { c.Meta = []byte(fmt.Sprintf("meta-%d", i)) })
	for _, m := range nodes[0].Members() {
		if want := "meta-" + strings.TrimPrefix(m.Name, "node-"); string(m.Meta) != want {
			t.Fatalf("%s meta %q, want %q", m.Name, m.Meta, want)
		}
	}
	events, cancel := nodes[0].Subscribe()
	defer cancel()
	if err := nodes[1].SetMeta([]byte("updated")); err != nil {
		t.Fatal(err)
	}
	ev := receive(t, events, 10*time.Second, func(e MemberEvent) bool { return e.Member.Name == "node-1" }, "meta update")
	if ev.Type != EventUpdate || string(ev.Member.Meta) != "updated" || ev.Member.State != StateAlive {
		t.Fatalf("got %v meta %q", ev, ev.Member.Meta)
	}
	if err := nodes[1].SetMeta(make([]byte, memberlist.MetaMaxSize+1)); err == nil {
		t.Fatal("SetMeta accepted oversized meta")
	}
	cancel()
	cancel()
	if _, ok := <-events; ok {
		t.Fatal("subscription open after cancel")
	}
}

func TestSecretMismatch(t *testing.T) {
	k1 := []byte("0123456789abcdef")
	k2 := []byte("fedcba9876543210fedcba98") // AES-192
	cases := []struct {
		name          string
		seed, joiner  []byte
		wantMismatch  bool
		wantInMessage string
	}{
		{"different keys", k1, k2, true, "neither side can decrypt"},
		{"only the joiner keyed", nil, k1, true, "the member has none"},
		{"only the seed keyed", k1, nil, true, "this node has none"},
		{"same key", k2, k2, false, ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sc := testConfig(t, fmt.Sprintf("seed-%d", i))
			sc.SecretKey = c.seed
			seed := startNode(t, sc)
			jc := testConfig(t, fmt.Sprintf("joiner-%d", i))
			jc.SecretKey = c.joiner
			joiner := startNode(t, jc)

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			err := joiner.Join(ctx, []string{seed.Addr()})
			t.Logf("Join after %v: %v", time.Since(start).Round(time.Millisecond), err)
			if !c.wantMismatch {
				if err != nil {
					t.Fatal(err)
				}
				waitAlive(t, []*Node{seed, joiner}, []*Node{joiner, seed})
				return
			}
			if !errors.Is(err, ErrSecretMismatch) {
				t.Fatalf("err = %v, want ErrSecretMismatch", err)
			}
			msg := err.Error()
			for _, want := range []string{"join " + seed.Addr(), "not admitted", "the cluster secret differs", c.wantInMessage} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
			if ctx.Err() != nil {
				t.Fatal("Join retried a secret mismatch until the deadline")
			}
			if len(seed.Members()) != 1 {
				t.Fatalf("seed admitted the joiner: %s", memberNames(seed.Members()))
			}
		})
	}
}

func TestJoinNobodyAnswers(t *testing.T) {
	n := startNode(t, testConfig(t, "lonely"))
	if err := n.Join(context.Background(), nil); err == nil {
		t.Fatal("Join with no addresses succeeded")
	}

	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	err = n.Join(ctx, []string{addr})
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrSecretMismatch) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	for _, want := range []string{addr, "gave up after", "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	t.Log(err)
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "name is required") {
		t.Fatalf("New without a name: %v", err)
	}

	first := startNode(t, testConfig(t, "first"))
	_, port, _ := net.SplitHostPort(first.Addr())
	cfg := testConfig(t, "second")
	fmt.Sscan(port, &cfg.BindPort)
	if n, err := New(cfg); err == nil {
		n.Shutdown()
		t.Fatal("New bound a port in use")
	} else if !strings.Contains(err.Error(), first.Addr()) {
		t.Fatalf("bind error %q does not name %s", err, first.Addr())
	} else {
		t.Log(err)
	}

	cfg = testConfig(t, "third")
	cfg.DBPath = filepath.Join(t.TempDir(), "no", "such", "dir", "x.db")
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), cfg.DBPath) {
		t.Fatalf("New with an unwritable DB path: %v", err)
	} else {
		t.Log(err)
	}
}

func TestShutdown(t *testing.T) {
	n := startNode(t, testConfig(t, "solo"))
	events, cancel := n.Subscribe()
	watch, cancelWatch := n.Records().Watch("")
	if err := n.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := n.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	for range events {
	}
	for range watch {
	}
	cancel()
	cancelWatch()
	if _, err := n.Records().Put("k", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Shutdown = %v, want ErrClosed", err)
	}
	if err := n.SetMeta(nil); !errors.Is(err, ErrShutdown) {
		t.Fatalf("SetMeta after Shutdown = %v", err)
	}
	if err := n.Join(context.Background(), []string{"127.0.0.1:1"}); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Join after Shutdown = %v", err)
	}
	if err := n.Leave(time.Second); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Leave after Shutdown = %v", err)
	}
	if ch, cancel := n.Subscribe(); ch == nil {
		t.Fatal("nil channel")
	} else {
		cancel()
	}
}

// TestMockNetwork runs a cluster on memberlist's in-memory transport.
// MockTransport blocks a sender forever once the receiver has stopped, so
// the test only joins and broadcasts.
func TestMockNetwork(t *testing.T) {
	var network memberlist.MockNetwork
	const size = 3
	transports := make([]*memberlist.MockTransport, size) // all before any node runs
	for i := range size {
		transports[i] = network.NewTransport(fmt.Sprintf("mock-%d", i))
	}
	nodes := make([]*Node, size)
	for i := range size {
		cfg := testConfig(t, fmt.Sprintf("mock-%d", i))
		cfg.Transport = transports[i]
		cfg.PushPullInterval = time.Hour
		nodes[i] = startNode(t, cfg)
	}
	for _, n := range nodes[1:] {
		joinOK(t, n, nodes[0].Addr())
	}
	waitAlive(t, nodes, nodes)
	if _, err := nodes[2].Records().Put("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		eventually(t, 10*time.Second, func() bool { return getValue(n.Records(), "k") == "v" }, "%s lacks k", n.Name())
	}
}

// TestPushedRecordsSkipTheGossipRounds: a local write under PushPrefixes
// reaches the other members at once, though no gossip round (here an hour
// apart, and no anti-entropy) would carry it; a write under no push
// prefix waits for the rounds. Before the push, the job records Shoal's
// nodes wait on arrived up to GossipInterval late.
func TestPushedRecordsSkipTheGossipRounds(t *testing.T) {
	nodes := startCluster(t, 2, func(_ int, c *Config) {
		c.GossipInterval, c.ProbeInterval, c.PushPullInterval = time.Hour, time.Hour, time.Hour
		c.SyncDial = nil
		c.PushPrefixes = []string{"job/"}
	})
	ch, cancel := nodes[1].Records().Watch("")
	defer cancel()
	if _, err := nodes[0].Records().Put("file/a", []byte("not pushed")); err != nil {
		t.Fatal(err)
	}
	r, err := nodes[0].Records().Put("job/1", []byte("pushed"))
	if err != nil {
		t.Fatal(err)
	}
	got := receive(t, ch, 10*time.Second, func(x Record) bool { return x.Key == "job/1" }, "the pushed record")
	if got.Version != r.Version || string(got.Value) != "pushed" {
		t.Fatalf("received %+v, want %+v", got, r)
	}
	if _, ok := nodes[1].Records().Get("file/a"); ok {
		t.Fatal("a record under no push prefix arrived without a gossip round")
	}
}
