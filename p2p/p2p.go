// Package p2p is a Shoal node's data-plane host: go-libp2p over TCP only,
// secured by Noise, multiplexed by yamux, inside a private network keyed by
// the cluster secret. It opens and serves streams by protocol ID and answers
// a small ping protocol of its own. It is the only package of Shoal that
// imports go-libp2p; callers see peer IDs and multiaddrs as strings and
// streams as mesh.Stream.
//
// A host may also run a second listener, the direct plane
// (Config.DirectListenAddrs): the same identity, TLS 1.3 instead of Noise
// and no private-network layer, which encrypts every byte a second time
// (XSalsa20) and costs more CPU than the rest of a stream together. It
// admits only peers the caller has passed to AddPeer (the caller learns
// them from the secret-keyed gossip); any other peer is dropped right
// after the TLS handshake proves its ID. NewStream uses the direct plane
// to a peer whose direct addresses are known (SetDirect), and the private
// network otherwise or when the direct dial fails.
//
// Nothing here discovers peers: no mDNS, DHT, relay or NAT port mapping. The
// caller learns peers' IDs and addresses (from gossip) and hands them to
// AddPeer.
package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/core/transport"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	mss "github.com/multiformats/go-multistream"

	"shoal.dev/shoal/mesh"
)

// PSKSize is the length in bytes of a private-network key.
const PSKSize = 32

// DefaultListenAddr is where a host listens unless told otherwise: loopback,
// any free port.
const DefaultListenAddr = "/ip4/127.0.0.1/tcp/0"

// DefaultPingTimeout bounds a ping when its context has no deadline, and
// bounds the serving side of every ping.
const DefaultPingTimeout = 10 * time.Second

var (
	// ErrNotInNetwork means a TCP connection to the peer was made but the
	// secure handshake over it failed: almost always because the peer uses a
	// different private-network key (another cluster secret), or is not a
	// Shoal node at all. A peer that crashes in the middle of a handshake
	// looks the same. Returned (wrapped) by NewStream and Ping.
	ErrNotInNetwork = errors.New("secure handshake failed: the peer is not in our private network")

	// ErrWrongPeer means the node answering at the peer's address proved a
	// different peer ID than the one dialed, e.g. another node took over the
	// port. Returned (wrapped) by NewStream and Ping.
	ErrWrongPeer = errors.New("a different peer answered at that address")

	// ErrUnknownPeer means there is no address to dial the peer at: AddPeer
	// was never called for it, or RemovePeer was. Returned (wrapped) by
	// NewStream and Ping.
	ErrUnknownPeer = errors.New("no known address for the peer")

	// ErrUnsupportedProtocol means the peer does not serve the protocol.
	// Returned (wrapped) by NewStream; with a protocol the peer is known to
	// serve, negotiation is lazy and a later failure shows on the stream's
	// first Read or Write instead.
	ErrUnsupportedProtocol = errors.New("the peer does not serve the protocol")

	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("p2p host closed")

	// ErrBadKeyFile means Config.KeyFile exists but does not hold an
	// identity key. Returned (wrapped) by New; the file is left untouched.
	ErrBadKeyFile = errors.New("malformed identity key file")
)

// Config configures a Host. The zero value of each field means its default.
type Config struct {
	// ListenAddrs are the TCP multiaddrs to listen on, such as
	// "/ip4/0.0.0.0/tcp/4001"; port 0 picks a free port. Default
	// [DefaultListenAddr].
	ListenAddrs []string

	// KeyFile is the path of the identity key file. It is created (mode
	// 0600, missing parent directories 0700) with a new Ed25519 key if it
	// does not exist, so that a restarted node keeps its peer ID. A file that
	// does not hold a key is an error and is never overwritten. Default ""
	// means a new identity at every start, for tests.
	KeyFile string

	// PSK is the 32-byte private-network key, derived from the cluster
	// secret: only hosts with the same PSK can connect to each other. Default
	// nil means no private network.
	PSK []byte

	// DirectListenAddrs, if not empty, start the direct plane: a second
	// listener on these TCP multiaddrs, with the same identity, secured
	// by TLS 1.3 without the private network, that admits only peers
	// passed to AddPeer. Default none.
	DirectListenAddrs []string

	// Name is the node name this host answers pings with. Default "".
	Name string

	// PingTimeout bounds a ping whose context has no deadline, and the
	// serving side of each ping. Default DefaultPingTimeout.
	PingTimeout time.Duration

	// Logger receives the host's own log records (go-libp2p logs on its
	// own). Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the default configuration: loopback on a free port,
// a fresh identity, no private network.
func DefaultConfig() Config {
	return Config{
		ListenAddrs: []string{DefaultListenAddr},
		PingTimeout: DefaultPingTimeout,
		Logger:      slog.Default(),
	}
}

// validate fills in defaults and rejects bad values.
func (c *Config) validate() error {
	if len(c.ListenAddrs) == 0 {
		c.ListenAddrs = []string{DefaultListenAddr}
	}
	if _, err := parseAddrs(c.ListenAddrs, true); err != nil {
		return fmt.Errorf("listen addresses: %w", err)
	}
	if len(c.DirectListenAddrs) > 0 {
		if _, err := parseAddrs(c.DirectListenAddrs, true); err != nil {
			return fmt.Errorf("direct listen addresses: %w", err)
		}
	}
	if c.PSK != nil && len(c.PSK) != PSKSize {
		return fmt.Errorf("private network key is %d bytes, want exactly %d", len(c.PSK), PSKSize)
	}
	if c.PingTimeout < 0 {
		return fmt.Errorf("negative ping timeout %v", c.PingTimeout)
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = DefaultPingTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Host is a running data-plane host. Its methods are safe for concurrent use.
type Host struct {
	h           host.Host
	log         *slog.Logger
	name        string
	pingTimeout time.Duration
	hs          *handshakes

	// direct is the direct plane's host (nil when off), gate the peers it
	// admits, and directFailed when a direct dial to a peer last failed.
	direct       host.Host
	gate         *gate
	directMu     sync.Mutex
	directFailed map[peer.ID]directFailure

	// opened counts the streams NewStream opened over the private network
	// and over the direct plane.
	openedPrivate, openedDirect atomic.Int64

	mu       sync.Mutex
	closed   bool
	handlers sync.WaitGroup // running stream handlers; Add only under mu while !closed

	closeOnce sync.Once
	closeErr  error
}

// New starts a host listening on cfg.ListenAddrs. It fails, naming the
// address, if any of them cannot be listened on (such as a port in use).
func New(cfg Config) (*Host, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("p2p: config: %w", err)
	}
	listen, _ := parseAddrs(cfg.ListenAddrs, true) // checked by validate
	key, err := loadOrCreateKey(cfg.KeyFile, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("p2p: %w", err)
	}
	hs := &handshakes{}
	lh, err := newLibp2pHost(key, cfg.PSK, hs, false, nil)
	if err != nil {
		return nil, fmt.Errorf("p2p: start host: %w", err)
	}
	for _, a := range listen {
		if err := listenOn(lh.Network(), a); err != nil {
			lh.Close()
			return nil, fmt.Errorf("p2p: listen on %s: %w", a, err)
		}
	}
	g := &gate{ok: map[peer.ID]bool{}}
	var dh host.Host
	if len(cfg.DirectListenAddrs) > 0 {
		dlisten, _ := parseAddrs(cfg.DirectListenAddrs, true) // checked by validate
		dh, err = newLibp2pHost(key, nil, &handshakes{}, true, g)
		if err != nil {
			lh.Close()
			return nil, fmt.Errorf("p2p: start direct host: %w", err)
		}
		for _, a := range dlisten {
			if err := listenOn(dh.Network(), a); err != nil {
				dh.Close()
				lh.Close()
				return nil, fmt.Errorf("p2p: listen on %s (direct): %w", a, err)
			}
		}
	}
	h := &Host{
		h:           lh,
		log:         cfg.Logger,
		name:        cfg.Name,
		pingTimeout: cfg.PingTimeout,
		hs:          hs,

		direct:       dh,
		gate:         g,
		directFailed: map[peer.ID]directFailure{},
	}
	h.Handle(PingProtocol, h.servePing)
	h.log.Debug("p2p host started", "peer_id", h.ID(), "addrs", h.Addrs(), "direct", h.DirectAddrs())
	return h, nil
}

// gate is the direct plane's connection gater: it admits a connection, in
// either direction, only once the security handshake has proved the
// remote peer's ID and that ID was passed to AddPeer (and not removed
// since).
type gate struct {
	mu sync.Mutex
	ok map[peer.ID]bool
}

func (g *gate) admit(p peer.ID, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if ok {
		g.ok[p] = true
	} else {
		delete(g.ok, p)
	}
}

func (g *gate) admitted(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ok[p]
}

func (g *gate) InterceptPeerDial(p peer.ID) bool             { return g.admitted(p) }
func (g *gate) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (g *gate) InterceptAccept(network.ConnMultiaddrs) bool  { return true }
func (g *gate) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.admitted(p)
}
func (g *gate) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// listenOn listens on one address and returns the underlying error (such as
// one wrapping syscall.EADDRINUSE) where the swarm exposes it.
func listenOn(n network.Network, a ma.Multiaddr) error {
	if s, ok := n.(interface{ AddListenAddr(ma.Multiaddr) error }); ok {
		return s.AddListenAddr(a)
	}
	return n.Listen(a)
}

// tcpTransport returns a constructor for libp2p's TCP transport, without
// SO_REUSEPORT, whose outbound handshakes are watched by hs.
func tcpTransport(hs *handshakes) func(transport.Upgrader, network.ResourceManager) (*tcp.TcpTransport, error) {
	return func(up transport.Upgrader, rcmgr network.ResourceManager) (*tcp.TcpTransport, error) {
		return tcp.NewTCPTransport(handshakeUpgrader{Upgrader: up, hs: hs}, rcmgr, nil, tcp.DisableReuseport())
	}
}

// handshakeUpgrader wraps libp2p's connection upgrader (private network,
// then security and muxer negotiation) to tell why an outbound upgrade
// failed. Upgrade runs only once the TCP connection is made, so any failure
// in it is a handshake failure, not an unreachable peer. Inbound connections
// are upgraded by the listener libp2p builds, not through this Upgrade, and
// are unaffected.
type handshakeUpgrader struct {
	transport.Upgrader
	hs *handshakes
}

// Upgrade upgrades c, recording the handshake in u.hs and wrapping
// ErrNotInNetwork or ErrWrongPeer into an outbound failure.
func (u handshakeUpgrader) Upgrade(ctx context.Context, t transport.Transport, c manet.Conn, dir network.Direction, p peer.ID, scope network.ConnManagementScope) (transport.CapableConn, error) {
	if dir != network.DirOutbound {
		return u.Upgrader.Upgrade(ctx, t, c, dir, p, scope)
	}
	u.hs.begin(p)
	cc, err := u.Upgrader.Upgrade(ctx, t, c, dir, p, scope)
	u.hs.end(p, err)
	if err == nil {
		return cc, nil
	}
	var mismatch sec.ErrPeerIDMismatch
	if errors.As(err, &mismatch) {
		return nil, fmt.Errorf("%w: %w", ErrWrongPeer, err)
	}
	return nil, fmt.Errorf("%w: %w", ErrNotInNetwork, err)
}

// handshakes records, per peer, outbound handshakes in progress and when
// the last one failed. It lets NewStream tell a dial that timed out because
// the handshake never finished from one that never connected: libp2p
// reports both as a bare "context deadline exceeded".
//
// With another PSK the two ends decrypt each other's first message to
// garbage. Usually that garbage fails multistream's checks at once ("message
// did not have trailing newline", "incoming message was too large", or the
// other end hung up), but about one time in three it reads as a length
// prefix of up to 1 KiB that the other end never sends, and both ends wait
// until a deadline.
type handshakes struct {
	mu sync.Mutex
	m  map[peer.ID]*handshakeState
}

type handshakeState struct {
	inflight int
	failed   time.Time // when the last handshake failed; zero if it did not
}

func (hs *handshakes) begin(p peer.ID) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.m == nil {
		hs.m = make(map[peer.ID]*handshakeState)
	}
	st := hs.m[p]
	if st == nil {
		st = &handshakeState{}
		hs.m[p] = st
	}
	st.inflight++
}

func (hs *handshakes) end(p peer.ID, err error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	st := hs.m[p]
	st.inflight--
	if err == nil {
		st.failed = time.Time{}
	} else {
		st.failed = time.Now()
	}
	if st.inflight == 0 && st.failed.IsZero() {
		delete(hs.m, p)
	}
}

// stalled reports whether a handshake with p is in progress, or failed
// after since.
func (hs *handshakes) stalled(p peer.ID, since time.Time) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	st := hs.m[p]
	return st != nil && (st.inflight > 0 || st.failed.After(since))
}

// forget drops what is recorded about p.
func (hs *handshakes) forget(p peer.ID) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if st := hs.m[p]; st != nil && st.inflight == 0 {
		delete(hs.m, p)
	}
}

// ID returns the host's peer ID in its string form.
func (h *Host) ID() string {
	return h.h.ID().String()
}

// Addrs returns the multiaddrs the host listens on, with the actual ports
// and with unspecified IPs (0.0.0.0, ::) expanded to the interfaces' IPs,
// without a /p2p/ suffix: what peers should pass to AddPeer.
func (h *Host) Addrs() []string {
	as, err := h.h.Network().InterfaceListenAddresses()
	if err != nil {
		as = h.h.Network().ListenAddresses()
	}
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// DirectAddrs returns the multiaddrs the direct plane listens on, in the
// form of Addrs; none when it is off.
func (h *Host) DirectAddrs() []string {
	if h.direct == nil {
		return nil
	}
	as, err := h.direct.Network().InterfaceListenAddresses()
	if err != nil {
		as = h.direct.Network().ListenAddresses()
	}
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// AddPeer records addrs as the addresses of the peer with ID id, replacing
// the ones given before, and admits the peer to the direct plane, until
// RemovePeer. It does not connect. Each address must pass ValidateAddrs.
func (h *Host) AddPeer(id string, addrs []string) error {
	p, err := decodePeerID(id)
	if err != nil {
		return fmt.Errorf("p2p: add peer: %w", err)
	}
	if p == h.h.ID() {
		return fmt.Errorf("p2p: add peer %s: that is this host", id)
	}
	as, err := parseAddrs(addrs, false)
	if err != nil {
		return fmt.Errorf("p2p: add peer %s: %w", id, err)
	}
	setAddrs(h.h.Peerstore(), p, as)
	h.gate.admit(p, true)
	return nil
}

// SetDirect records addrs as the peer's direct-plane addresses, replacing
// the ones given before; none means the peer has no direct plane. Streams
// to the peer then go over the direct plane when this host runs one too.
// It does not admit the peer (AddPeer does). Each address must pass
// ValidateAddrs.
func (h *Host) SetDirect(id string, addrs []string) error {
	p, err := decodePeerID(id)
	if err != nil {
		return fmt.Errorf("p2p: set direct addresses: %w", err)
	}
	if h.direct == nil {
		return nil
	}
	var as []ma.Multiaddr
	if len(addrs) > 0 {
		if as, err = parseAddrs(addrs, false); err != nil {
			return fmt.Errorf("p2p: set direct addresses of %s: %w", id, err)
		}
	}
	setAddrs(h.direct.Peerstore(), p, as)
	return nil
}

// setAddrs makes as the addresses of p in ps.
func setAddrs(ps peerstore.Peerstore, p peer.ID, as []ma.Multiaddr) {
	var stale []ma.Multiaddr
	for _, old := range ps.Addrs(p) {
		if !containsAddr(as, old) {
			stale = append(stale, old)
		}
	}
	ps.AddAddrs(p, as, peerstore.PermanentAddrTTL)
	ps.SetAddrs(p, stale, 0) // a zero TTL deletes
}

// RemovePeer forgets the peer's addresses and closes the connections to it.
// The peer may still connect to us. A malformed id is ignored.
func (h *Host) RemovePeer(id string) {
	p, err := peer.Decode(id)
	if err != nil {
		return
	}
	h.gate.admit(p, false)
	for _, lh := range h.hosts() {
		ps := lh.Peerstore()
		ps.ClearAddrs(p)
		if err := lh.Network().ClosePeer(p); err != nil {
			h.log.Debug("close connections to removed peer", "peer_id", id, "err", err)
		}
		ps.RemovePeer(p)
	}
	h.hs.forget(p)
	h.directMu.Lock()
	delete(h.directFailed, p)
	h.directMu.Unlock()
}

// hosts returns the libp2p hosts: the private network's, and the direct
// plane's when it runs.
func (h *Host) hosts() []host.Host {
	if h.direct == nil {
		return []host.Host{h.h}
	}
	return []host.Host{h.h, h.direct}
}

// directDialTimeout bounds connecting to a peer's direct plane, so that a
// firewall that drops its packets costs a stream this long, not the
// caller's whole deadline, before the private network is tried.
const directDialTimeout = 3 * time.Second

// After a failed direct dial to a peer, streams to it go over the private
// network for a while before the direct plane is tried again: at first
// directRetryMin (the usual cause is a peer that has not yet admitted us,
// its gossip a moment behind ours), doubling with each failure in a row up
// to directRetryMax (a firewall in the way).
const (
	directRetryMin = 500 * time.Millisecond
	directRetryMax = time.Minute
)

// directFailure is when a direct dial to a peer last failed, and how long
// to wait from then.
type directFailure struct {
	at   time.Time
	wait time.Duration
}

// useDirect reports whether a stream to p should try the direct plane.
func (h *Host) useDirect(p peer.ID) bool {
	if h.direct == nil || len(h.direct.Peerstore().Addrs(p)) == 0 || !h.gate.admitted(p) {
		return false
	}
	h.directMu.Lock()
	defer h.directMu.Unlock()
	f, failed := h.directFailed[p]
	return !failed || time.Since(f.at) >= f.wait
}

// directResult records how a direct dial to p went.
func (h *Host) directResult(p peer.ID, err error) {
	h.directMu.Lock()
	defer h.directMu.Unlock()
	if err == nil {
		delete(h.directFailed, p)
		return
	}
	f := h.directFailed[p]
	f.at, f.wait = time.Now(), min(max(2*f.wait, directRetryMin), directRetryMax)
	h.directFailed[p] = f
}

// NewStream opens a stream speaking protocol to the peer, connecting first
// if needed. ctx bounds connecting and negotiating, not the stream's later
// life: use SetDeadline for that. The caller owns the stream and must Close
// or Reset it. Errors wrap ErrUnknownPeer, ErrNotInNetwork, ErrWrongPeer,
// ErrUnsupportedProtocol or ErrClosed where they apply, or the context's
// error.
func (h *Host) NewStream(ctx context.Context, peerID, protocolID string) (mesh.Stream, error) {
	s, err := h.newStream(ctx, peerID, protocolID)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// newStream is NewStream returning libp2p's own stream type.
func (h *Host) newStream(ctx context.Context, peerID, protocolID string) (network.Stream, error) {
	p, err := decodePeerID(peerID)
	if err != nil {
		return nil, fmt.Errorf("p2p: open stream: %w", err)
	}
	if protocolID == "" {
		return nil, errors.New("p2p: open stream: empty protocol ID")
	}
	if h.isClosed() {
		return nil, fmt.Errorf("p2p: open %s stream to %s: %w", protocolID, p, ErrClosed)
	}
	// No dial backoff on either plane: libp2p refuses to redial an
	// address for 5 s to 5 min after a failure ("dial backoff"), which
	// would keep a restarted peer unreachable (or, on the direct plane,
	// on the private network) longer than our callers' and directResult's
	// retry delays. Callers choose when to retry.
	clearBackoff(h.h, p)
	if h.useDirect(p) {
		clearBackoff(h.direct, p)
		dctx, cancel := context.WithTimeout(ctx, directDialTimeout)
		s, err := h.direct.NewStream(dctx, p, protocol.ID(protocolID))
		cancel()
		if err == nil {
			h.directResult(p, nil)
			h.openedDirect.Add(1)
			return s, nil
		}
		var unsupported mss.ErrNotSupported[protocol.ID]
		if ctx.Err() != nil || errors.As(err, &unsupported) || h.isClosed() {
			return nil, fmt.Errorf("p2p: open %s stream to %s: %w", protocolID, p, h.classify(err, p, time.Now()))
		}
		// A firewall, or a peer that has not yet learned of us from
		// gossip: the private network still reaches it.
		h.directResult(p, err)
		h.log.Debug("direct data plane unreachable; using the private network", "peer_id", p.String(), "err", err)
	}
	start := time.Now()
	s, err := h.h.NewStream(ctx, p, protocol.ID(protocolID))
	if err != nil {
		return nil, fmt.Errorf("p2p: open %s stream to %s: %w", protocolID, p, h.classify(err, p, start))
	}
	h.openedPrivate.Add(1)
	return s, nil
}

// clearBackoff forgets lh's dial backoff for p unless lh is connected to it.
func clearBackoff(lh host.Host, p peer.ID) {
	if lh.Network().Connectedness(p) == network.Connected {
		return
	}
	if sw, ok := lh.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
}

// StreamsOpened returns how many streams NewStream (and Ping) opened over
// the private network and over the direct plane since New.
func (h *Host) StreamsOpened() (private, direct int64) {
	return h.openedPrivate.Load(), h.openedDirect.Load()
}

// classify adds our sentinels to an error from libp2p's NewStream to p,
// called at start.
func (h *Host) classify(err error, p peer.ID, start time.Time) error {
	var unsupported mss.ErrNotSupported[protocol.ID]
	switch {
	case errors.Is(err, ErrNotInNetwork) || errors.Is(err, ErrWrongPeer):
		return err
	case errors.Is(err, context.DeadlineExceeded) && h.hs.stalled(p, start):
		return fmt.Errorf("%w (connected, but the handshake did not finish in time): %w", ErrNotInNetwork, err)
	case h.isClosed() || errors.Is(err, swarm.ErrSwarmClosed):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	case errors.Is(err, swarm.ErrNoAddresses):
		return fmt.Errorf("%w: %w", ErrUnknownPeer, err)
	case errors.As(err, &unsupported):
		return fmt.Errorf("%w: %w", ErrUnsupportedProtocol, err)
	}
	return err
}

// Handle serves inbound streams speaking protocol with handler, replacing any
// handler for that protocol. The handler is called in a goroutine of its own
// for each stream, so concurrently, and may block; peerID is the remote
// peer's ID, proved by the handshake. It owns the stream and must Close or
// Reset it before returning. Close waits for running handlers after closing
// every connection, so a handler must return once its stream fails.
func (h *Host) Handle(protocolID string, handler func(peerID string, s mesh.Stream)) {
	for _, lh := range h.hosts() {
		lh.SetStreamHandler(protocol.ID(protocolID), func(s network.Stream) {
			if !h.enterHandler() {
				s.Reset()
				return
			}
			defer h.handlers.Done()
			handler(s.Conn().RemotePeer().String(), s)
		})
	}
}

// RemoveHandler stops serving protocol; streams being served go on.
func (h *Host) RemoveHandler(protocolID string) {
	for _, lh := range h.hosts() {
		lh.RemoveStreamHandler(protocol.ID(protocolID))
	}
}

// enterHandler counts a handler in, unless the host is closed.
func (h *Host) enterHandler() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.handlers.Add(1)
	return true
}

func (h *Host) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Close closes every connection and listener and waits for running stream
// handlers to return. It is safe to call more than once; later calls wait
// for the first and return its result.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		h.mu.Unlock()
		for _, lh := range h.hosts() {
			if err := lh.Close(); err != nil && h.closeErr == nil {
				h.closeErr = fmt.Errorf("p2p: close: %w", err)
			}
		}
		h.handlers.Wait()
	})
	return h.closeErr
}

// decodePeerID parses a peer ID in string form.
func decodePeerID(id string) (peer.ID, error) {
	if id == "" {
		return "", errors.New("empty peer ID")
	}
	p, err := peer.Decode(id)
	if err != nil {
		return "", fmt.Errorf("malformed peer ID %q: %w", id, err)
	}
	return p, nil
}

func containsAddr(as []ma.Multiaddr, a ma.Multiaddr) bool {
	for _, b := range as {
		if b.Equal(a) {
			return true
		}
	}
	return false
}
