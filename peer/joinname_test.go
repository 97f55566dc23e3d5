package peer_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
)

// loopbackPort finds a port free for TCP and UDP on every one of ips.
func loopbackPort(t *testing.T, ips []string) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Skipf("cannot listen on %s: %v", ips[0], err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		free := true
		for _, ip := range ips {
			addr := net.JoinHostPort(ip, fmt.Sprint(port))
			tl, err1 := net.Listen("tcp", addr)
			ul, err2 := net.ListenPacket("udp", addr)
			if tl != nil {
				tl.Close()
			}
			if ul != nil {
				ul.Close()
			}
			free = free && err1 == nil && err2 == nil
		}
		if free {
			return port
		}
	}
	t.Skip("no port free on every loopback address")
	return 0
}

// TestRetryJoinByName: four agents on 127.0.0.2 … 127.0.0.5, one gossip
// port, each given only --join cluster.test:PORT --retry-join, the name
// resolving (through a test resolver, as a DNS round-robin record would)
// to all four. They start one after the other, the first while no other
// exists; none is given another's address, and all meet.
func TestRetryJoinByName(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
	port := loopbackPort(t, ips)
	var lookups atomic.Int64
	resolver := func(ctx context.Context, host string) ([]netip.Addr, error) {
		if host != "cluster.test" {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		lookups.Add(1)
		var out []netip.Addr
		for _, ip := range ips {
			out = append(out, netip.MustParseAddr(ip))
		}
		return out, nil
	}
	c := clustertest.Start(t, len(ips), clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		cfg.GossipAddr = fmt.Sprintf("%s:%d", ips[i], port)
		cfg.HTTPAddr = ips[i] + ":0"
		cfg.P2PAddrs = []string{"/ip4/" + ips[i] + "/tcp/0"}
		cfg.Join = []string{fmt.Sprintf("cluster.test:%d", port)}
		cfg.RetryJoin = true
		cfg.Resolver = resolver
	}})
	c.WaitAlive(len(ips), 60*time.Second)
	if lookups.Load() < 2 {
		t.Errorf("cluster.test looked up %d times", lookups.Load())
	}
	// The data plane works between them too.
	clustertest.Eventually(t, 30*time.Second, func() error {
		for _, n := range c.Running() {
			if n.Ring().Len() != len(ips) {
				return fmt.Errorf("%s's ring has %d members", n.Name(), n.Ring().Len())
			}
		}
		return nil
	})
	for _, n := range c.Running()[1:] {
		if _, err := c.Node(0).Ping(context.Background(), n.Name()); err != nil {
			t.Errorf("ping %s: %v", n.Name(), err)
		}
	}
}
