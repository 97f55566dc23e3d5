package gossip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// commonPort finds a port free for TCP and UDP on every one of ips.
func commonPort(t *testing.T, ips []string) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Skipf("cannot listen on %s: %v", ips[0], err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
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
			if err1 != nil || err2 != nil {
				ok = false
				break
			}
		}
		if ok {
			return port
		}
	}
	t.Skip("no port free on every loopback address")
	return 0
}

// TestJoinByName: four members on 127.0.0.2 … 127.0.0.5, all on one
// port, and a name whose (test) resolver answers, at first, only the
// joiner's own address, as a DNS record not yet filled would; afterwards
// all four. One Join of the name, and no IP given to it, brings all four
// together: the name is looked up again while Join retries, the joiner
// leaves itself out and contacts every other address.
func TestJoinByName(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
	port := commonPort(t, ips)
	var calls atomic.Int32
	resolver := func(ctx context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "cluster.test":
			if calls.Add(1) == 1 {
				return []netip.Addr{netip.MustParseAddr(ips[0])}, nil
			}
			var out []netip.Addr
			for _, ip := range ips {
				out = append(out, netip.MustParseAddr(ip))
			}
			return out, nil
		default:
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
	}
	nodes := make([]*Node, len(ips))
	for i, ip := range ips {
		cfg := testConfig(t, fmt.Sprintf("node-%d", i))
		cfg.BindAddr, cfg.BindPort = ip, port
		cfg.Resolver = resolver
		nodes[i] = startNode(t, cfg)
	}
	joinOK(t, nodes[0], fmt.Sprintf("cluster.test:%d", port))
	if calls.Load() < 2 {
		t.Errorf("the name was looked up %d times; want it looked up again after the first answer had no other member", calls.Load())
	}
	waitAlive(t, nodes, nodes)

	// A name that does not resolve: Join says so in words.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := nodes[1].Join(ctx, []string{fmt.Sprintf("nowhere.test:%d", port)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("join of a name that does not resolve: %v", err)
	}
	for _, want := range []string{"gave up after", "no member answered", "nowhere.test: no such host"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "deadline exceeded") {
		t.Errorf("error %q shows Go's words", err)
	}
}
