package peer

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestResolveListenNames: gossip, advertise and p2p addresses may name
// hosts; they are resolved (IPv4 first) before anything listens.
func TestResolveListenNames(t *testing.T) {
	resolver := func(ctx context.Context, host string) ([]netip.Addr, error) {
		switch host {
		case "me.test":
			return []netip.Addr{netip.MustParseAddr("fd00::9"), netip.MustParseAddr("198.18.0.9")}, nil
		case "v6.test":
			return []netip.Addr{netip.MustParseAddr("fd00::7")}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	p2p := []string{"/dns4/me.test/tcp/7000", "/dns6/me.test/tcp/7001", "/ip4/127.0.0.1/tcp/0"}
	c := Config{GossipAddr: "me.test:7946", AdvertiseAddr: "v6.test:7946", P2PAddrs: p2p, Resolver: resolver}
	if err := c.resolveListenNames(); err != nil {
		t.Fatal(err)
	}
	if c.GossipAddr != "198.18.0.9:7946" || c.AdvertiseAddr != "[fd00::7]:7946" {
		t.Errorf("gossip %q, advertise %q", c.GossipAddr, c.AdvertiseAddr)
	}
	if want := []string{"/ip4/198.18.0.9/tcp/7000", "/ip6/fd00::9/tcp/7001", "/ip4/127.0.0.1/tcp/0"}; !slices.Equal(c.P2PAddrs, want) {
		t.Errorf("p2p %q, want %q", c.P2PAddrs, want)
	}
	if p2p[0] != "/dns4/me.test/tcp/7000" {
		t.Error("the caller's slice was changed")
	}
	for _, bad := range []Config{
		{GossipAddr: "nowhere.test:7946", Resolver: resolver},
		{GossipAddr: "127.0.0.1:0", P2PAddrs: []string{"/dns4/v6.test/tcp/1"}, Resolver: resolver},
	} {
		err := bad.resolveListenNames()
		if err == nil || !strings.Contains(err.Error(), ".test") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

// TestDirectAddrsConfig: the direct plane listens by default on each IP
// of --p2p on a free port; "off" alone turns it off, and "off" beside an
// address is refused.
func TestDirectAddrsConfig(t *testing.T) {
	c := DefaultConfig()
	c.P2PAddrs = []string{"/ip4/127.0.0.1/tcp/7000", "/ip4/127.0.0.1/tcp/7002", "/ip6/::1/tcp/7000"}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/ip4/127.0.0.1/tcp/0", "/ip6/::1/tcp/0"}; !slices.Equal(c.P2PDirectAddrs, want) {
		t.Errorf("default direct addrs %q, want %q", c.P2PDirectAddrs, want)
	}
	c = DefaultConfig()
	c.P2PDirectAddrs = []string{"off"}
	if err := c.validate(); err != nil || len(c.P2PDirectAddrs) != 0 {
		t.Errorf("off: %q, %v", c.P2PDirectAddrs, err)
	}
	c = DefaultConfig()
	c.P2PDirectAddrs = []string{"/ip4/127.0.0.1/tcp/0", "off"}
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), `"off" stands alone`) {
		t.Errorf("off beside an address: %v", err)
	}
	c = DefaultConfig()
	c.P2PDirectAddrs = []string{"/ip4/198.18.0.1/tcp/0"}
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "without a cluster secret") {
		t.Errorf("non-loopback direct address without a secret: %v", err)
	}
}
