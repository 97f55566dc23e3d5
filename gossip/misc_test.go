package gossip

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestPump(t *testing.T) {
	p := newPump[int]()
	for i := range 1000 { // nobody reads yet: push must not block
		p.push(i)
	}
	for i := range 1000 {
		if v := <-p.out; v != i {
			t.Fatalf("got %d, want %d", v, i)
		}
	}
	p.push(1)
	p.stop()
	p.stop()
	p.push(2) // after stop: dropped, no panic
	for range p.out {
	}
}

func TestParseMemberlistLine(t *testing.T) {
	cases := []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=1.2.3.4:5\n", slog.LevelDebug, "Stream connection from=1.2.3.4:5"},
		{"[INFO] memberlist: Marking a as failed", slog.LevelInfo, "Marking a as failed"},
		{"[WARN] memberlist: Refuting", slog.LevelWarn, "Refuting"},
		{"[ERR] memberlist: Failed to send", slog.LevelError, "Failed to send"},
		{"[ERROR] memberlist: Failed to compress", slog.LevelError, "Failed to compress"},
		{"[ERR] Failed to shutdown transport: x", slog.LevelError, "Failed to shutdown transport: x"},
		{"Err: Could not set the deadline: x", slog.LevelError, "Could not set the deadline: x"},
		{"no level at all", slog.LevelInfo, "no level at all"},
		{"", slog.LevelInfo, ""},
	}
	for _, c := range cases {
		level, msg := parseMemberlistLine([]byte(c.line))
		if level != c.level || msg != c.msg {
			t.Errorf("%q: got %v %q, want %v %q", c.line, level, msg, c.level, c.msg)
		}
	}
}

// TestMemberlistLogsReachSlog checks that memberlist's own lines arrive in
// the configured slog handler at their level.
func TestMemberlistLogsReachSlog(t *testing.T) {
	var buf lockedBuffer
	cfg := LocalConfig()
	cfg.Name = "logger"
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_ = n.Join(ctx, []string{"127.0.0.1:1"}) // memberlist logs the failure at debug
	out := buf.String()
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "component=memberlist") || !strings.Contains(out, "node=logger") {
		t.Fatalf("memberlist lines not routed to slog:\n%s", out)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{Name: "a"}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	if c.BindAddr != d.BindAddr || c.ProbeInterval != d.ProbeInterval || c.TombstoneTTL != 24*time.Hour ||
		c.SuspicionMult != d.SuspicionMult || c.PushPullInterval != d.PushPullInterval || c.TCPTimeout != d.TCPTimeout ||
		c.Logger == nil || c.Now == nil || c.Rand == nil {
		t.Fatalf("defaults not filled: %+v", c)
	}
	if c.BindPort != 0 {
		t.Fatal("zero BindPort must stay 0 (a free port)")
	}
	if d.BindPort != 7946 {
		t.Fatal("DefaultConfig must bind 7946")
	}

	bad := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "name is required"},
		{"port", func(c *Config) { c.BindPort = 70000 }, "bind port"},
		{"key", func(c *Config) { c.SecretKey = []byte("short") }, "secret key"},
		{"meta", func(c *Config) { c.Meta = make([]byte, 513) }, "meta of 513 bytes"},
		{"negative", func(c *Config) { c.GossipInterval = -1 }, "gossip interval"},
		{"timeout", func(c *Config) { c.ProbeTimeout = 2 * time.Second }, "probe timeout"},
	}
	for _, b := range bad {
		c := LocalConfig()
		c.Name = "a"
		b.mod(&c)
		err := c.validate()
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: err = %v, want %q", b.name, err, b.want)
		}
	}
}

func TestFailureDetectionTime(t *testing.T) {
	l := LocalConfig()
	// n=4 local: 4 probe intervals (2s) + 3*0.5s*6 suspicion (9s) + 5 gossip rounds (250ms).
	if got, want := l.FailureDetectionTime(4), 11250*time.Millisecond; got != want {
		t.Fatalf("FailureDetectionTime(4) = %v, want %v", got, want)
	}
	// n=2: no confirmations expected, so the minimum suspicion timeout.
	if got, want := l.FailureDetectionTime(2), 2*500*time.Millisecond+1500*time.Millisecond+5*50*time.Millisecond; got != want {
		t.Fatalf("FailureDetectionTime(2) = %v, want %v", got, want)
	}
	prev := time.Duration(0)
	for n := 1; n <= 100; n++ {
		d := Config{}.FailureDetectionTime(n)
		if d < prev {
			t.Fatalf("bound shrinks from %v to %v at n=%d", prev, d, n)
		}
		prev = d
	}
}

func TestStateAndEventStrings(t *testing.T) {
	var got []string
	for _, s := range []State{StateAlive, StateSuspect, StateDead, StateLeft, 9} {
		got = append(got, s.String())
	}
	for _, e := range []EventType{EventJoin, EventUpdate, EventFail, EventLeave, 9} {
		got = append(got, e.String())
	}
	if s := strings.Join(got, " "); s != "alive suspect dead left state(9) join update fail leave event(9)" {
		t.Fatal(s)
	}
	v := Version{HLC: 5<<logicalBits | 3, Node: "a"}
	if v.String() != "5.3@a" || v.Time().UnixMilli() != 5 {
		t.Fatal(v.String())
	}
}

func TestJoinErrorClassification(t *testing.T) {
	// The shape memberlist v0.7.0 returns (a multierror of these lines).
	err := fakeMultiError{
		errors.New("failed to join 10.0.0.1:7946: dial tcp 10.0.0.1:7946: connect: connection refused"),
		errors.New("failed to join 10.0.0.2:7946: no installed keys could decrypt the message"),
	}
	fs := splitJoinError(err)
	if len(fs) != 2 || fs[1].addr != "10.0.0.2:7946" || fs[1].cause.Error() != "no installed keys could decrypt the message" {
		t.Fatalf("split: %+v", fs)
	}
	m, all := secretMismatches(fs, 2)
	if m == nil || all || m.addr != "10.0.0.2:7946" {
		t.Fatalf("mismatch = %+v, all = %v", m, all)
	}
	if _, all := secretMismatches(fs[1:], 1); !all {
		t.Fatal("a single mismatched address must end Join at once")
	}
	if e := mismatchError(m); !errors.Is(e, ErrSecretMismatch) || !bytes.Contains([]byte(e.Error()), []byte("join 10.0.0.2:7946: not admitted")) {
		t.Fatal(e)
	}
}

type fakeMultiError []error

func (m fakeMultiError) Error() string          { return "multi" }
func (m fakeMultiError) WrappedErrors() []error { return m }

// ourGoroutines returns the stacks of the live goroutines that this
// package's non-test code started.
func ourGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if i := strings.Index(g, "created by shoal.dev/shoal/gossip."); i >= 0 && !strings.Contains(g[i:], "gossip.Test") {
			out = append(out, g)
		}
	}
	return out
}

// TestShutdownStopsGoroutines exercises every goroutine the package starts
// (pumps, the store's flusher, the reliable sender, leave notices) and
// checks that none is left once Shutdown has returned.
func TestShutdownStopsGoroutines(t *testing.T) {
	t.Run("cluster", func(t *testing.T) {
		nodes := startCluster(t, 3, func(i int, c *Config) { c.DBPath = filepath.Join(t.TempDir(), "db") })
		for _, n := range nodes {
			_, _ = n.Subscribe() // never read nor cancelled: Shutdown closes it
			_, _ = n.Records().Watch("")
		}
		if _, err := nodes[0].Records().Put("big", make([]byte, 8<<10)); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			eventually(t, 10*time.Second, func() bool { _, ok := n.Records().Get("big"); return ok }, "%s lacks big", n.Name())
		}
		if err := nodes[2].Leave(time.Second); err != nil {
			t.Fatal(err)
		}
		if len(ourGoroutines()) < 3*3 { // per node: sender, flusher, two pumps
			t.Fatalf("the goroutine detector sees only %d goroutines of ours", len(ourGoroutines()))
		}
	})
	if g := ourGoroutines(); len(g) > 0 {
		t.Fatalf("%d goroutines of ours survive Shutdown:\n%s", len(g), strings.Join(g, "\n\n"))
	}
}
