package p2p

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/sec"
	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tlssec "github.com/libp2p/go-libp2p/p2p/security/tls"
)

// newLibp2pHost assembles the go-libp2p host from its parts — peerstore,
// swarm, upgrader, TCP transport, basic host — the way libp2p.New does with
// our options, without importing the root go-libp2p package. That package's
// defaults link QUIC, WebTransport, WebRTC, WebSocket, NAT port mapping
// (UPnP), relay, AutoNAT and the resource manager into every binary that
// imports it, whether or not a host uses them, and their package
// initialisation ran at every start of the shoal binary, each CLI command
// included. The host is the one libp2p.New built with:
//
//   - no listen addresses: New listens one address at a time, since the
//     swarm only fails if every address fails, and does not say which;
//   - TCP only, without SO_REUSEPORT, so that a port held by another
//     process (another host, too) is an error rather than a shared port;
//   - Noise security (announcing yamux inside the handshake, as libp2p.New
//     does), or with direct set TLS 1.3 (the direct plane) whose records
//     leave in one socket write per Write (coalescing), the yamux
//     muxer, the private network keyed by psk if not nil;
//   - connections gated by g if not nil (the direct plane's gate, which
//     checks each peer's ID once the security handshake proved it);
//   - no relay, no NAT port mapping, no libp2p ping (we answer our own
//     /shoal/ping/1), no address discovery by identify, no metrics;
//   - no resource manager (network.NullResourceManager). The shuffle opens
//     many concurrent streams between few peers, and go-libp2p's default
//     limiter caps streams and memory per peer and per protocol (and
//     connections per IP, and their rate): those limits would fail healthy
//     shuffle streams with "resource limit exceeded" (measured: the 152nd
//     concurrent outbound stream of one protocol to one peer is refused;
//     TestManyConcurrentStreams holds 600). Its job is defending against
//     hostile peers, but only holders of the cluster secret get through the
//     private network and Noise handshake, and only members named by the
//     gossip through the direct plane's gate, so every peer that can open a
//     stream is one of our nodes; the callers (shuffle, blockstore) bound
//     their own concurrency. Unauthenticated connections are still bounded
//     in time by the upgrader's accept timeout. Yamux then grows stream
//     windows without a memory cap; it only grows them while the reader
//     keeps up;
//   - no connection trimming (connmgr.NullConnMgr): a cluster is a few
//     dozen peers at most.
//
// Closing the returned host closes its swarm and peerstore.
func newLibp2pHost(key crypto.PrivKey, psk []byte, hs *handshakes, direct bool, g connmgr.ConnectionGater) (host.Host, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	ps, err := pstoremem.NewPeerstore()
	if err != nil {
		return nil, err
	}
	if err := ps.AddPrivKey(id, key); err != nil {
		ps.Close()
		return nil, err
	}
	if err := ps.AddPubKey(id, key.GetPublic()); err != nil {
		ps.Close()
		return nil, err
	}
	rcmgr := &network.NullResourceManager{}
	bus := eventbus.NewBus()
	swopts := []swarm.Option{swarm.WithResourceManager(rcmgr)}
	if g != nil {
		swopts = append(swopts, swarm.WithConnectionGater(g))
	}
	sw, err := swarm.NewSwarm(id, ps, bus, swopts...)
	if err != nil {
		ps.Close()
		return nil, err
	}
	muxers := []upgrader.StreamMuxer{{ID: yamux.ID, Muxer: yamux.DefaultTransport}}
	var security sec.SecureTransport
	if direct {
		muxers[0].Muxer = directMuxer
		var t *tlssec.Transport
		t, err = tlssec.New(tlssec.ID, key, muxers)
		security = coalescing{t}
	} else {
		security, err = noise.New(noise.ID, key, muxers)
	}
	if err != nil {
		sw.Close()
		ps.Close()
		return nil, err
	}
	var key32 pnet.PSK
	if psk != nil {
		key32 = append(pnet.PSK(nil), psk...)
	}
	up, err := upgrader.New([]sec.SecureTransport{security}, muxers, key32, rcmgr, g)
	if err != nil {
		sw.Close()
		ps.Close()
		return nil, fmt.Errorf("connection upgrader: %w", err)
	}
	tpt, err := tcpTransport(hs)(up, rcmgr)
	if err != nil {
		sw.Close()
		ps.Close()
		return nil, err
	}
	if err := sw.AddTransport(tpt); err != nil {
		sw.Close()
		ps.Close()
		return nil, err
	}
	bh, err := basichost.NewHost(sw, &basichost.HostOpts{
		EventBus:    bus,
		ConnManager: connmgr.NullConnMgr{},
	})
	if err != nil {
		sw.Close()
		ps.Close()
		return nil, err
	}
	bh.Start()
	return bh, nil
}

// directFrame is the most data one yamux frame carries on the direct
// plane: 256 KiB, where yamux's default is 64 KiB less its 12-byte
// header. A block's copy to a replica is written 256 KiB at a time
// (blockstore's copyWithDeadline), so each write is one frame: one copy
// into yamux's send queue, one Write through TLS (whose records then
// leave in two socket writes, see maxBatch) and one receive-window check,
// where 64 KiB frames took four of each. The frame format is yamux's and
// a sender never sends more than the receiver's window (at least 256 KiB),
// so a node with 64 KiB frames and one with 256 KiB exchange streams both
// ways (TestDirectFramesMixed). The gossip plane keeps yamux's default.
const directFrame = 256 << 10

// yamuxHeader is the size of a yamux frame's header, which yamux counts
// in its MaxMessageSize.
const yamuxHeader = 12

// directMuxer is yamux as libp2p configures it (16 MiB stream windows),
// with frames of up to directFrame bytes of data.
var directMuxer = func() *yamux.Transport {
	c := *yamux.DefaultTransport
	c.MaxMessageSize = directFrame + yamuxHeader
	return &c
}()
