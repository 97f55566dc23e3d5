package p2p

import (
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"shoal.dev/shoal/mesh"
)

// SameHost reports whether s, a stream this package opened or served, joins
// two processes on one host: its connection's remote IP is a loopback
// address or the connection's own local IP. Such a stream's bytes never
// cross a network, so compressing them only costs CPU (the shuffle sends
// map output plain over it). Any other stream, and one whose addresses are
// unknown, is not.
func SameHost(s mesh.Stream) bool {
	ns, ok := s.(network.Stream)
	if !ok {
		return false
	}
	c := ns.Conn()
	if c == nil {
		return false
	}
	return sameHostAddrs(c.LocalMultiaddr(), c.RemoteMultiaddr())
}

// sameHostAddrs is SameHost's rule on a connection's two addresses.
func sameHostAddrs(local, remote ma.Multiaddr) bool {
	if local == nil || remote == nil {
		return false
	}
	rip, err := manet.ToIP(remote)
	if err != nil {
		return false
	}
	if rip.IsLoopback() {
		return true
	}
	lip, err := manet.ToIP(local)
	if err != nil || lip.IsUnspecified() {
		return false
	}
	return lip.Equal(rip)
}
