package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// resolveTimeout bounds the lookup of one listen address's host name.
const resolveTimeout = 10 * time.Second

// resolveListenNames replaces the host names of GossipAddr, AdvertiseAddr
// and the /dns4, /dns6 and /dns P2P multiaddrs (direct ones too) by an address each resolves
// to (IPv4 before IPv6, /dns6 IPv6 only), so that an agent can be set up
// by names alone. memberlist and libp2p listen on addresses, not names.
func (c *Config) resolveListenNames() error {
	resolve := c.Resolver
	if resolve == nil {
		resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	lookup := func(what, host string, v6 bool) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
		defer cancel()
		ips, err := resolve(ctx, host)
		if err != nil {
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
				return "", fmt.Errorf("%s: %s: no such host", what, host)
			}
			return "", fmt.Errorf("%s: cannot resolve %s: %v", what, host, err)
		}
		var pick netip.Addr
		for _, ip := range ips {
			ip = ip.Unmap()
			if v6 && ip.Is4() {
				continue
			}
			if !pick.IsValid() || ip.Is4() && !pick.Is4() {
				pick = ip
			}
		}
		if !pick.IsValid() {
			return "", fmt.Errorf("%s: %s resolves to no usable address", what, host)
		}
		return pick.String(), nil
	}
	hostPort := func(what string, addr *string) error {
		host, port, err := net.SplitHostPort(*addr)
		if err != nil || host == "" {
			return nil // validate reported it, or every interface
		}
		if _, err := netip.ParseAddr(host); err == nil {
			return nil
		}
		ip, err := lookup(what+" "+*addr, host, false)
		if err != nil {
			return err
		}
		*addr = net.JoinHostPort(ip, port)
		return nil
	}
	if err := hostPort("gossip bind address", &c.GossipAddr); err != nil {
		return err
	}
	if c.AdvertiseAddr != "" {
		if err := hostPort("advertise address", &c.AdvertiseAddr); err != nil {
			return err
		}
	}
	multiaddrs := func(what string, addrs *[]string) error {
		*addrs = slices.Clone(*addrs)
		for i, ma := range *addrs {
			parts := strings.Split(ma, "/")
			if len(parts) < 3 || parts[0] != "" || (parts[1] != "dns4" && parts[1] != "dns6" && parts[1] != "dns") {
				continue
			}
			ip, err := lookup(what+" "+ma, parts[2], parts[1] == "dns6")
			if err != nil {
				return err
			}
			proto := "ip4"
			if !netip.MustParseAddr(ip).Is4() {
				proto = "ip6"
			}
			if parts[1] == "dns4" && proto != "ip4" {
				return fmt.Errorf("%s %s: %s has no IPv4 address", what, ma, parts[2])
			}
			parts[1], parts[2] = proto, ip
			(*addrs)[i] = strings.Join(parts, "/")
		}
		return nil
	}
	if err := multiaddrs("p2p address", &c.P2PAddrs); err != nil {
		return err
	}
	if err := multiaddrs("p2p direct address", &c.P2PDirectAddrs); err != nil {
		return err
	}
	return nil
}
