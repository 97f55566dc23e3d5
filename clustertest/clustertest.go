// Package clustertest starts clusters of real Shoal nodes inside one test
// process: real gossip, real libp2p and real HTTP, all on 127.0.0.1 with
// ports the OS picks, and data dirs under the test's temp dir.
package clustertest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"shoal.dev/shoal/job"
	"shoal.dev/shoal/peer"
	"shoal.dev/shoal/secret"
)

// Options shape a test cluster.
type Options struct {
	// Secret keys the cluster. Default: a fresh random secret.
	Secret secret.Secret
	// NoSecret runs an open cluster (loopback only), ignoring Secret.
	NoSecret bool
	// Verbose sends the nodes' logs to stderr; default off (SHOAL_TEST_LOG=1
	// turns it on too).
	Verbose bool
	// Registry holds the jobs the nodes run; default the built-ins.
	Registry *job.Registry
	// Configure, if set, changes node i's configuration before it starts.
	Configure func(i int, cfg *peer.Config)
}

// Cluster is a set of in-process nodes.
type Cluster struct {
	t    testing.TB
	opts Options
	dir  string

	mu    sync.Mutex
	nodes []*peer.Node // nil where stopped
	addrs []string     // last gossip address of each node, for restarts
}

// Start starts n nodes, the first alone and the rest joining it, and waits
// until every node sees n alive members. The cluster is closed when the test
// ends.
func Start(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.Secret.IsZero() {
		opts.Secret = secret.Generate()
	}
	if os.Getenv("SHOAL_TEST_LOG") != "" {
		opts.Verbose = true
	}
	c := &Cluster{t: t, opts: opts, dir: t.TempDir(), nodes: make([]*peer.Node, n), addrs: make([]string, n)}
	t.Cleanup(c.Close)
	for i := 0; i < n; i++ {
		c.start(i)
	}
	c.WaitAlive(n, 30*time.Second)
	return c
}

// Config returns the configuration node i starts with.
func (c *Cluster) Config(i int) peer.Config {
	cfg := peer.DefaultConfig()
	cfg.Name = fmt.Sprintf("node%d", i+1)
	cfg.DataDir = filepath.Join(c.dir, cfg.Name)
	cfg.GossipAddr = "127.0.0.1:0"
	if c.addrs[i] != "" {
		cfg.GossipAddr = c.addrs[i]
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Secret = c.opts.Secret
	if c.opts.NoSecret {
		cfg.Secret = secret.Secret{}
	}
	cfg.FastGossip = true
	cfg.Registry = c.opts.Registry
	cfg.SortBuffer = 4 << 20
	cfg.JoinTimeout = 20 * time.Second
	var w io.Writer = io.Discard
	if c.opts.Verbose {
		w = os.Stderr
	}
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for j, a := range c.addrs {
		if j != i && a != "" && c.nodes[j] != nil {
			cfg.Join = append(cfg.Join, a)
		}
	}
	if c.opts.Configure != nil {
		c.opts.Configure(i, &cfg)
	}
	return cfg
}

func (c *Cluster) start(i int) *peer.Node {
	c.t.Helper()
	c.mu.Lock()
	cfg := c.Config(i)
	c.mu.Unlock()
	n, err := peer.New(cfg)
	if err != nil {
		c.t.Fatalf("start %s: %v", cfg.Name, err)
	}
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		c.t.Fatalf("start %s: %v", cfg.Name, err)
	}
	c.mu.Lock()
	c.nodes[i], c.addrs[i] = n, n.GossipAddr()
	c.mu.Unlock()
	return n
}

// Len is the number of nodes, running or not.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node returns node i, or nil if it is stopped.
func (c *Cluster) Node(i int) *peer.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// Running returns the running nodes.
func (c *Cluster) Running() []*peer.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*peer.Node
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Kill stops node i abruptly, without leaving, as a crash would.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		n.Close()
	}
}

// Leave stops node i gracefully.
func (c *Cluster) Leave(i int) {
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if n != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	}
}

// Restart starts a stopped node i again on its data dir and gossip address,
// joining the running nodes.
func (c *Cluster) Restart(i int) *peer.Node {
	c.t.Helper()
	if c.Node(i) != nil {
		c.t.Fatalf("restart node%d: still running", i+1)
	}
	return c.start(i)
}

// TryRestart starts a stopped node i again on its data dir and gossip
// address with its configuration changed by mutate (if not nil), and
// returns the error instead of failing the test: for tests of refusals.
func (c *Cluster) TryRestart(i int, mutate func(cfg *peer.Config)) (*peer.Node, error) {
	c.t.Helper()
	if c.Node(i) != nil {
		c.t.Fatalf("restart node%d: still running", i+1)
	}
	c.mu.Lock()
	cfg := c.Config(i)
	c.mu.Unlock()
	if mutate != nil {
		mutate(&cfg)
	}
	n, err := peer.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := n.Start(context.Background()); err != nil {
		n.Close()
		return nil, err
	}
	c.mu.Lock()
	c.nodes[i], c.addrs[i] = n, n.GossipAddr()
	c.mu.Unlock()
	return n, nil
}

// WaitAlive waits until every running node sees want alive members.
func (c *Cluster) WaitAlive(want int, timeout time.Duration) {
	c.t.Helper()
	Eventually(c.t, timeout, func() error {
		for _, n := range c.Running() {
			if got := n.Ring().Len(); got != want {
				return fmt.Errorf("%s sees %d alive members, want %d", n.Name(), got, want)
			}
		}
		return nil
	})
}

// Close stops every node abruptly. Safe twice.
func (c *Cluster) Close() {
	for i := range c.nodes {
		c.Kill(i)
	}
}

// Eventually calls cond until it returns nil, failing the test with cond's
// last error when timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Wait(timeout, cond); err != nil {
		t.Fatalf("after %s: %v", timeout, err)
	}
}

// Wait calls cond until it returns nil or timeout passes, and returns cond's
// last error in that case.
func Wait(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		<-tick.C
	}
}
