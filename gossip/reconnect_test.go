package gossip

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func TestPlanReconnect(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const timeout = 24 * time.Hour
	c := func(name string, failedAgo time.Duration) Candidate {
		return Candidate{Name: name, Addr: name + ":7946", FailedAt: t0.Add(-failedAgo)}
	}
	cases := []struct {
		name   string
		failed []Candidate
		alive  int
		seed   uint64
		want   ReconnectPlan
	}{
		{name: "nobody failed", alive: 3},
		{name: "one failed, one alive: always tried",
			failed: []Candidate{c("b", time.Minute)}, alive: 1,
			want: ReconnectPlan{Try: c("b", time.Minute)}},
		{name: "failed just under the timeout is still tried",
			failed: []Candidate{c("b", timeout-time.Nanosecond)}, alive: 1,
			want: ReconnectPlan{Try: c("b", timeout-time.Nanosecond)}},
		{name: "failed for exactly the timeout is reaped, not tried",
			failed: []Candidate{c("b", timeout)}, alive: 1,
			want: ReconnectPlan{Reap: []string{"b"}}},
		{name: "reaped ones are never the one tried",
			failed: []Candidate{c("z", 2*timeout), c("a", 25*time.Hour), c("m", time.Second)}, alive: 1,
			want: ReconnectPlan{Try: c("m", time.Second), Reap: []string{"a", "z"}}},
		{name: "2|2 split: as many failed as alive, always tries",
			failed: []Candidate{c("c", time.Minute), c("d", time.Minute)}, alive: 2, seed: 1,
			want: ReconnectPlan{Try: c("d", time.Minute)}},
		{name: "2|2 split, another seed picks the other",
			failed: []Candidate{c("c", time.Minute), c("d", time.Minute)}, alive: 2, seed: 0,
			want: ReconnectPlan{Try: c("c", time.Minute)}},
		{name: "one failed among many alive: this round skips (1/10, seed 1)",
			failed: []Candidate{c("x", time.Minute)}, alive: 10, seed: 1},
		{name: "alive 0 counts as 1",
			failed: []Candidate{c("x", time.Minute)}, alive: 0,
			want: ReconnectPlan{Try: c("x", time.Minute)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := PlanReconnect(t0, tc.failed, tc.alive, timeout, rand.New(rand.NewPCG(tc.seed, 0)))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			// The order of the candidates does not matter.
			rev := make([]Candidate, len(tc.failed))
			for i, f := range tc.failed {
				rev[len(rev)-1-i] = f
			}
			if got2 := PlanReconnect(t0, rev, tc.alive, timeout, rand.New(rand.NewPCG(tc.seed, 0))); !reflect.DeepEqual(got2, got) {
				t.Fatalf("reversed input: %+v, want %+v", got2, got)
			}
		})
	}
}

// TestPlanReconnectRate checks Serf's rate: with f failed and a alive, a
// round tries someone with probability f/a, uniformly among the failed.
func TestPlanReconnectRate(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	t0 := time.Now()
	failed := []Candidate{{Name: "a", FailedAt: t0}, {Name: "b", FailedAt: t0}}
	const rounds = 20000
	tried := map[string]int{}
	for range rounds {
		if p := PlanReconnect(t0, failed, 8, time.Hour, rng); p.Try.Name != "" {
			tried[p.Try.Name]++
		}
	}
	total := tried["a"] + tried["b"]
	// Expect 2/8 of the rounds: 5000, sd ~61; allow 6 sd.
	if total < 5000-370 || total > 5000+370 {
		t.Fatalf("%d of %d rounds tried someone, want about %d", total, rounds, rounds/4)
	}
	if d := tried["a"] - tried["b"]; d < -400 || d > 400 {
		t.Fatalf("uneven choice: %v", tried)
	}
}

func TestPeersFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "peers.json")
	if got, err := loadPeers(path); err != nil || got != nil {
		t.Fatalf("missing file: %v, %v", got, err)
	}
	when := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	in := []peerEntry{{Name: "b", Addr: "198.18.0.2:7946", FailedAt: when}, {Name: "a", Addr: "198.18.0.1:7946"}}
	if err := savePeers(path, in); err != nil {
		t.Fatal(err)
	}
	got, err := loadPeers(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []peerEntry{{Name: "a", Addr: "198.18.0.1:7946"}, {Name: "b", Addr: "198.18.0.2:7946", FailedAt: when}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip: %+v", got)
	}
	raw, _ := os.ReadFile(path)
	if strings.Count(string(raw), "failed_at") != 1 {
		t.Fatalf("an alive member has a failed_at:\n%s", raw)
	}

	bad := []struct{ name, content, want string }{
		{"malformed", `{"version": 1, "members": [`, "malformed"},
		{"other version", `{"version": 2, "members": []}`, "version 2"},
		{"nameless member", `{"version": 1, "members": [{"addr": "x:1"}]}`, "without a name"},
	}
	for _, b := range bad {
		os.WriteFile(path, []byte(b.content), 0o600)
		if _, err := loadPeers(path); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: %v, want an error with %q", b.name, err, b.want)
		}
	}
	big, _ := os.Create(path)
	big.Truncate(maxPeersFile + 1)
	big.Close()
	if _, err := loadPeers(path); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("oversized: %v", err)
	}
}

// partition cuts a loopback cluster into sides: cutTransports drop packets
// and refuse connections between gossip ports on different sides.
type partition struct {
	mu   sync.Mutex
	side map[int]int // gossip port -> side; 0 for all when healed
}

func (p *partition) split(sides map[int]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.side = sides
}

func (p *partition) heal() { p.split(nil) }

func (p *partition) cut(from int, to string) bool {
	_, port, err := net.SplitHostPort(to)
	if err != nil {
		return false
	}
	pt, _ := strconv.Atoi(port)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.side[from] != p.side[pt]
}

var errPartitioned = errors.New("partitioned")

// cutTransport is memberlist's NetTransport with the partition applied to
// everything this node sends or dials.
type cutTransport struct {
	*memberlist.NetTransport
	p    *partition
	port int
}

func (c *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if c.p.cut(c.port, addr) {
		return time.Now(), nil // lost on the wire
	}
	return c.NetTransport.WriteTo(b, addr)
}

func (c *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	return c.WriteTo(b, a.Addr)
}

func (c *cutTransport) DialTimeout(addr string, d time.Duration) (net.Conn, error) {
	if c.p.cut(c.port, addr) {
		return nil, errPartitioned
	}
	return c.NetTransport.DialTimeout(addr, d)
}

func (c *cutTransport) DialAddressTimeout(a memberlist.Address, d time.Duration) (net.Conn, error) {
	return c.DialTimeout(a.Addr, d)
}

func newCutTransport(t *testing.T, p *partition) *cutTransport {
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{"127.0.0.1"},
		BindPort:  0,
		Logger:    newMemberlistLogger(testLogger(t)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &cutTransport{NetTransport: nt, p: p, port: nt.GetAutoBindPort()}
}

// TestPartitionHeals splits four nodes 2|2 until each half has declared
// the other dead, heals the network, and checks that the reconnect loop
// makes them one cluster again, and that the return is logged.
func TestPartitionHeals(t *testing.T) {
	p := &partition{}
	nodes := make([]*Node, 4)
	ports := make([]int, 4)
	for i := range nodes {
		cfg := testConfig(t, fmt.Sprintf("node-%d", i))
		tr := newCutTransport(t, p)
		cfg.Transport = tr
		cfg.BindPort = tr.port
		cfg.ReconnectInterval = 200 * time.Millisecond
		// memberlist gossips to the dead for PushPullInterval after their
		// death; a short one lets the split outlast it.
		cfg.PushPullInterval = time.Second
		cfg.PeersFile = filepath.Join(t.TempDir(), "peers.json")
		ports[i] = tr.port
		nodes[i] = startNode(t, cfg)
	}
	for _, n := range nodes[1:] {
		joinOK(t, n, nodes[0].Addr())
	}
	waitAlive(t, nodes, nodes)

	p.split(map[int]int{ports[0]: 0, ports[1]: 0, ports[2]: 1, ports[3]: 1})
	a, b := nodes[:2], nodes[2:]
	bound := 2 * LocalConfig().FailureDetectionTime(4)
	for _, o := range nodes {
		eventually(t, bound, func() bool { return o.view.numAlive() == 2 }, "%s sees %s alive during the split", o.Name(), memberNames(o.Alive()))
	}
	for _, o := range a {
		for _, f := range b {
			if s, _ := memberState(o, f.Name()); s != StateDead {
				t.Fatalf("%s sees %s %s during the split, want dead", o.Name(), f.Name(), s)
			}
		}
	}
	failedTries := nodes[0].ReconnectStats().Attempts
	// Keep the split for ten failed rounds (2s at least): past the time
	// memberlist gossips to the dead, so only reconnecting can heal it.
	eventually(t, 20*time.Second, func() bool { return nodes[0].ReconnectStats().Attempts >= failedTries+10 }, "node-0 does not try to reconnect during the split")
	if s := nodes[0].ReconnectStats(); s.Successes != 0 {
		t.Fatalf("a reconnect succeeded across the split: %+v", s)
	}

	p.heal()
	// The bound: a reconnect round (200ms; with two failed and two alive
	// every round tries), a join, and the refutation's gossip.
	healBound := 10 * time.Second
	for _, o := range nodes {
		eventually(t, healBound, func() bool { return o.view.numAlive() == 4 }, "%s sees %s alive after the heal", o.Name(), memberNames(o.Alive()))
	}
	// The join that healed is counted when it returns and the merge when
	// its node marks the other half alive, which may come after a member
	// already shows all four: wait for both, within the same bound.
	eventually(t, healBound, func() bool {
		var successes, merges int64
		for _, n := range nodes {
			s := n.ReconnectStats()
			successes += s.Successes
			merges += s.Merges
		}
		return successes > 0 && merges > 0
	}, "healed without a reconnect or without a merge logged (reconnect stats summed over the nodes)")
}

// TestPeersFileRestart: a node keeps its members in the peers file; after
// a crash and restart with no join address it finds them again. A member
// that leaves is dropped from the file; one failed past the reconnect
// timeout is reaped from the file and from Members.
func TestPeersFileRestart(t *testing.T) {
	nodes := startCluster(t, 3, nil)
	dir := t.TempDir()
	cfg := testConfig(t, "restarted")
	cfg.PeersFile = filepath.Join(dir, "peers.json")
	cfg.ReconnectInterval = 100 * time.Millisecond
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	joinOK(t, n, nodes[0].Addr())
	waitAlive(t, append(nodes, n), append(nodes, n))
	wantAddrs := []string{nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr()}
	eventually(t, 5*time.Second, func() bool {
		got, _ := loadPeers(cfg.PeersFile)
		return len(got) == 3
	}, "the peers file does not list the 3 others")
	if got := n.KnownAddrs(); !reflect.DeepEqual(got, wantAddrs) {
		t.Fatalf("KnownAddrs %v, want %v", got, wantAddrs)
	}
	addr := n.Addr()
	n.Shutdown() // a crash: the others see it dead

	cfg2 := cfg
	_, port, _ := net.SplitHostPort(addr)
	cfg2.BindPort, _ = strconv.Atoi(port)
	n2 := startNode(t, cfg2)
	if got := n2.KnownAddrs(); !reflect.DeepEqual(got, wantAddrs) {
		t.Fatalf("after restart KnownAddrs %v, want %v", got, wantAddrs)
	}
	// No Join: the loop's first round tries the members of the file.
	waitAlive(t, append(nodes, n2), append(nodes, n2))
	eventually(t, 10*time.Second, func() bool { return n2.ReconnectStats().Successes > 0 },
		"found the cluster without a reconnect: %+v", n2.ReconnectStats())

	// A member that leaves is dropped from the file.
	if err := nodes[2].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool {
		got, _ := loadPeers(cfg.PeersFile)
		return len(got) == 2
	}, "the peers file still lists the member that left")
}

func TestReconnectReaps(t *testing.T) {
	nodes := startCluster(t, 3, func(i int, c *Config) {
		c.ReconnectInterval = 100 * time.Millisecond
		c.ReconnectTimeout = 2 * time.Second
		c.PeersFile = filepath.Join(t.TempDir(), "peers.json")
	})
	nodes[2].Shutdown()
	for _, o := range nodes[:2] {
		eventually(t, 2*LocalConfig().FailureDetectionTime(3), func() bool {
			s, ok := memberState(o, "node-2")
			return ok && s == StateDead
		}, "%s does not see node-2 dead", o.Name())
	}
	for _, o := range nodes[:2] {
		eventually(t, 10*time.Second, func() bool {
			_, listed := memberState(o, "node-2")
			return !listed && o.ReconnectStats().Reaped == 1
		}, "%s has not reaped node-2: %+v", o.Name(), o.ReconnectStats())
		if s := o.ReconnectStats(); s.Attempts == 0 {
			t.Fatalf("%s reaped node-2 without trying it: %+v", o.Name(), s)
		}
		if got := o.KnownAddrs(); len(got) != 1 {
			t.Fatalf("%s still knows %v", o.Name(), got)
		}
		got, _ := loadPeers(o.cfg.PeersFile)
		if len(got) != 1 {
			t.Fatalf("%s's peers file: %+v", o.Name(), got)
		}
	}
}
