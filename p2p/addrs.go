package p2p

import (
	"errors"
	"fmt"

	ma "github.com/multiformats/go-multiaddr"
)

// ValidateAddrs checks that every string in addrs is a multiaddr a peer can be
// dialed at: an IP or DNS name then a TCP port, such as "/ip4/10.0.0.7/tcp/4001"
// or "/dns4/node-3/tcp/4001", with no /p2p/ part (the peer ID travels on its
// own). It returns the first problem found, naming the address.
func ValidateAddrs(addrs []string) error {
	_, err := parseAddrs(addrs, false)
	return err
}

// parseAddrs parses addrs as TCP multiaddrs. With listen set, only IP hosts
// are accepted, since a TCP listener cannot bind a DNS name.
func parseAddrs(addrs []string, listen bool) ([]ma.Multiaddr, error) {
	if len(addrs) == 0 {
		return nil, errors.New("no addresses")
	}
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, s := range addrs {
		a, err := parseTCPAddr(s, listen)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// parseTCPAddr parses one multiaddr and checks it has the shape
// /<host>/<h>/tcp/<port> and nothing more.
func parseTCPAddr(s string, listen bool) (ma.Multiaddr, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("malformed multiaddr %q: %w", s, err)
	}
	if len(a) != 2 {
		return nil, fmt.Errorf("multiaddr %q: want /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port> and nothing more (only TCP is supported; the peer ID is passed separately)", s)
	}
	switch a[0].Code() {
	case ma.P_IP4, ma.P_IP6:
	case ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
		if listen {
			return nil, fmt.Errorf("multiaddr %q: listen on an IP address, not a DNS name", s)
		}
	default:
		return nil, fmt.Errorf("multiaddr %q: want an ip4, ip6 or dns host first, got %s", s, a[0].Protocol().Name)
	}
	if a[1].Code() != ma.P_TCP {
		return nil, fmt.Errorf("multiaddr %q: only TCP is supported, got %s", s, a[1].Protocol().Name)
	}
	return a, nil
}
