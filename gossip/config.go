package gossip

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/memberlist"
)

// Config configures a Node. Zero fields take the documented default (the
// LAN profile of DefaultConfig), except BindPort, where 0 means "pick a free
// port". Nobody may modify a Config, or the slices it holds, after New.
type Config struct {
	// Name is the node's name: required, unique in the cluster, stable
	// across restarts, at most 512 bytes.
	Name string

	// BindAddr is the address memberlist listens on, for both UDP and TCP.
	// Default "127.0.0.1".
	BindAddr string
	// BindPort is the port memberlist listens on, for both UDP and TCP.
	// DefaultConfig sets 7946; 0 picks a free port, which Node.Addr reports.
	BindPort int
	// AdvertiseAddr is the address other nodes reach this one at. Default:
	// the bind address (or a private address when binding 0.0.0.0).
	AdvertiseAddr string
	// AdvertisePort is the port other nodes reach this one at, used with
	// AdvertiseAddr. Default: the bind port (the one picked, for port 0).
	AdvertisePort int

	// SecretKey is the memberlist encryption key, 16, 24 or 32 bytes (AES
	// 128, 192 or 256). Default nil: plaintext. With a key, every message is
	// encrypted and plaintext ones are refused both ways.
	SecretKey []byte

	// Meta is the node's initial metadata, gossiped with its membership, at
	// most 512 bytes (memberlist.MetaMaxSize). Default empty.
	Meta []byte

	// DBPath is the bbolt file that persists the record store. Default "":
	// records live in memory only.
	DBPath string
	// TombstoneTTL is how long a deletion is remembered. A node away for
	// longer may bring the deleted record back. Default 24h.
	TombstoneTTL time.Duration
	// MaxClockDrift is how far ahead of this node's clock a remote record's
	// version may be. A record further ahead is rejected and logged, and
	// never reaches the hybrid logical clock: one peer with a clock far
	// ahead would otherwise drag every later local write to its time (or
	// past the largest valid timestamp). Default DefaultMaxClockDrift (1m).
	MaxClockDrift time.Duration

	// SyncDial opens anti-entropy streams to other members (see
	// SyncDialFunc); their ends go to Node.ServeSync. Default nil: no
	// anti-entropy, records spread by broadcasts only, and Synced holds only
	// while the node is alone.
	SyncDial SyncDialFunc
	// SyncInterval is the time between anti-entropy rounds with a random
	// alive member; a round also runs with every member not yet synced with
	// since start, on start and on every membership change. Default 10s.
	SyncInterval time.Duration
	// MetadataReset says the store was started empty in place of lost
	// metadata (Shoal's --recover-meta): Synced then also needs a completed
	// round with at least one other member, so that a node alone never
	// takes its empty store for the truth. Default false.
	MetadataReset bool

	// ProbeInterval is the time between failure-detection probes. Default 1s.
	ProbeInterval time.Duration
	// ProbeTimeout is how long to wait for a probe's direct ack before
	// trying indirect probes; less than ProbeInterval. Default 500ms.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspect member has to refute before
	// it is declared dead: SuspicionMult * max(1, log10(n)) * ProbeInterval,
	// up to 6 times that without confirmations. Default 4.
	SuspicionMult int
	// GossipInterval is the time between gossip rounds that carry
	// broadcasts (membership changes and records). Default 200ms.
	GossipInterval time.Duration
	// PushPrefixes names records that other nodes wait on to act (Shoal's
	// job, end and task progress records): a local write of a key under
	// one of them is also sent at once, one best-effort packet to each
	// alive member, besides being queued for the gossip rounds, so it
	// arrives in a network round trip rather than up to GossipInterval
	// later. A lost packet costs nothing: the gossip rounds carry the
	// record as for any other. Default none.
	PushPrefixes []string
	// PushMembers is the largest cluster (alive members, this node
	// included) in which PushPrefixes are pushed: beyond it the packets
	// of one write, which grow with the cluster, are left to the gossip
	// rounds alone. Default 32.
	PushMembers int
	// PushPullInterval is the time between memberlist's state exchanges
	// with a random member, which converge membership. Records do not ride
	// on them: anti-entropy (SyncDial) converges those. Default 30s.
	PushPullInterval time.Duration
	// TCPTimeout bounds a TCP connection (push/pull, join, reliable send).
	// One join attempt may overrun Join's context by this much. Default 10s.
	TCPTimeout time.Duration

	// ReconnectInterval is the time between reconnect rounds: each tries to
	// join one member that failed (see PlanReconnect). Default 30s.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a failed member is tried before it is
	// given up on and reaped. Default 24h.
	ReconnectTimeout time.Duration
	// PeersFile is where the node keeps the last known addresses of the
	// members it knows (alive or failed, not left), read at New and
	// rewritten on every change, so that after a restart it reconnects to
	// them (KnownAddrs). Default "": kept in memory only.
	PeersFile string

	// Logger receives this package's logs and memberlist's, at matching
	// levels. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock of the records' HLC and of tombstone expiry.
	// Default time.Now.
	Now func() time.Time
	// Rand is the source of Join's back-off jitter and of the reconnect
	// rounds' choices. The Node serialises its
	// own use, so it must not be shared with anything else. Default: a
	// generator seeded from the name and the time.
	Rand *rand.Rand

	// Resolver looks up the addresses of a host name given to Join. Join
	// asks again on every attempt, so it follows a name whose records
	// change (a Kubernetes headless service, a round-robin record). It may
	// be called concurrently. Default: the system's resolver
	// (net.DefaultResolver.LookupNetIP).
	Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

	// Transport replaces memberlist's UDP/TCP transport, for tests on
	// memberlist.MockNetwork. Default nil: a real NetTransport on BindAddr
	// and BindPort.
	Transport memberlist.Transport
}

// Timings of the LAN profile (memberlist.DefaultLANConfig).
const (
	defaultBindAddr         = "127.0.0.1"
	defaultBindPort         = 7946
	defaultTombstoneTTL     = 24 * time.Hour
	defaultProbeInterval    = time.Second
	defaultProbeTimeout     = 500 * time.Millisecond
	defaultSuspicionMult    = 4
	defaultGossipInterval   = 200 * time.Millisecond
	defaultPushPullInterval = 30 * time.Second
	defaultSyncInterval     = 10 * time.Second
	defaultTCPTimeout       = 10 * time.Second
	defaultReconnect        = 30 * time.Second
	defaultReconnectTimeout = 24 * time.Hour
	defaultPushMembers      = 32

	// suspicionMaxTimeoutMult and retransmitMult are memberlist settings
	// this package does not expose; FailureDetectionTime depends on them.
	suspicionMaxTimeoutMult = 6
	retransmitMult          = 4
)

// DefaultConfig returns the LAN profile: memberlist.DefaultLANConfig
// timings, bind 127.0.0.1:7946, 24h tombstones. Name must still be set.
func DefaultConfig() Config {
	return Config{
		BindAddr:         defaultBindAddr,
		BindPort:         defaultBindPort,
		TombstoneTTL:     defaultTombstoneTTL,
		MaxClockDrift:    DefaultMaxClockDrift,
		ProbeInterval:    defaultProbeInterval,
		ProbeTimeout:     defaultProbeTimeout,
		SuspicionMult:    defaultSuspicionMult,
		GossipInterval:   defaultGossipInterval,
		PushPullInterval: defaultPushPullInterval,
		SyncInterval:     defaultSyncInterval,
		TCPTimeout:       defaultTCPTimeout,

		ReconnectInterval: defaultReconnect,
		ReconnectTimeout:  defaultReconnectTimeout,
	}
}

// LocalConfig returns fast timings for tests and single-host clusters, in
// the spirit of memberlist.DefaultLocalConfig: bind 127.0.0.1 on a free
// port, probe every 500ms, gossip every 50ms, push/pull every 5s.
func LocalConfig() Config {
	c := DefaultConfig()
	c.BindPort = 0
	c.ProbeInterval = 500 * time.Millisecond
	c.ProbeTimeout = 250 * time.Millisecond
	c.SuspicionMult = 3
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 5 * time.Second
	c.SyncInterval = time.Second
	c.TCPTimeout = time.Second
	return c
}

// validate fills the defaults of zero fields and rejects bad values.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.Name == "" {
		bad("name is required")
	} else if len(c.Name) > maxNodeNameLen {
		bad("name of %d bytes exceeds %d", len(c.Name), maxNodeNameLen)
	}
	c.BindAddr = cmp.Or(c.BindAddr, defaultBindAddr)
	if c.Resolver == nil {
		c.Resolver = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if c.BindPort < 0 || c.BindPort > math.MaxUint16 {
		bad("bind port %d out of range", c.BindPort)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > math.MaxUint16 {
		bad("advertise port %d out of range", c.AdvertisePort)
	}
	if c.SecretKey != nil {
		if err := memberlist.ValidateKey(c.SecretKey); err != nil {
			bad("secret key of %d bytes: %w", len(c.SecretKey), err)
		}
	}
	if c.PushMembers < 0 {
		bad("push members %d is negative", c.PushMembers)
	} else if c.PushMembers == 0 {
		c.PushMembers = defaultPushMembers
	}
	if len(c.Meta) > memberlist.MetaMaxSize {
		bad("meta of %d bytes exceeds %d", len(c.Meta), memberlist.MetaMaxSize)
	}

	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"tombstone TTL", &c.TombstoneTTL, defaultTombstoneTTL},
		{"max clock drift", &c.MaxClockDrift, DefaultMaxClockDrift},
		{"probe interval", &c.ProbeInterval, defaultProbeInterval},
		{"probe timeout", &c.ProbeTimeout, defaultProbeTimeout},
		{"gossip interval", &c.GossipInterval, defaultGossipInterval},
		{"push/pull interval", &c.PushPullInterval, defaultPushPullInterval},
		{"anti-entropy interval", &c.SyncInterval, defaultSyncInterval},
		{"TCP timeout", &c.TCPTimeout, defaultTCPTimeout},
		{"reconnect interval", &c.ReconnectInterval, defaultReconnect},
		{"reconnect timeout", &c.ReconnectTimeout, defaultReconnectTimeout},
	}
	for _, d := range durations {
		if *d.v < 0 {
			bad("%s %v is negative", d.name, *d.v)
		}
		*d.v = cmp.Or(*d.v, d.def)
	}
	if c.ProbeTimeout >= c.ProbeInterval {
		bad("probe timeout %v must be less than the probe interval %v", c.ProbeTimeout, c.ProbeInterval)
	}
	if c.SuspicionMult < 0 {
		bad("suspicion multiplier %d is negative", c.SuspicionMult)
	}
	c.SuspicionMult = cmp.Or(c.SuspicionMult, defaultSuspicionMult)

	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		h := fnv.New64a()
		_, _ = h.Write([]byte(c.Name))
		c.Rand = rand.New(rand.NewPCG(h.Sum64(), uint64(time.Now().UnixNano())))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid gossip config: %w", err)
	}
	return nil
}

// FailureDetectionTime is an upper bound, for a healthy cluster of
// clusterSize members, on how long after a member stops without leaving
// every other member has marked it dead. It adds up, after memberlist's
// SWIM/Lifeguard rules (state.go probe and suspectNode, util.go
// suspicionTimeout):
//
//   - the probe round: each member probes one other per ProbeInterval in a
//     shuffled round robin, so some member probes the stopped one within
//     clusterSize-1 intervals, and the failed probe (direct ack timeout
//     ProbeTimeout, then indirect and TCP probes) ends within one more;
//   - the suspicion timeout at its maximum: SuspicionMult * max(1,
//     log10(n)) * ProbeInterval, times 6 when confirmations from other
//     members are expected (n > 2) but do not come;
//   - dissemination of the dead message: a broadcast is retransmitted
//     4*ceil(log10(n+1)) times, one gossip round per GossipInterval.
//
// Lifeguard may stretch probe intervals (up to 8x) on a member that is
// itself struggling; the bound does not cover that.
func (c Config) FailureDetectionTime(clusterSize int) time.Duration {
	n := max(clusterSize, 1)
	pi := cmp.Or(c.ProbeInterval, defaultProbeInterval)
	gi := cmp.Or(c.GossipInterval, defaultGossipInterval)
	mult := cmp.Or(c.SuspicionMult, defaultSuspicionMult)

	probeRound := time.Duration(n) * pi

	scale := math.Max(1, math.Log10(float64(n)))
	suspicion := time.Duration(float64(mult) * scale * float64(pi))
	if k := mult - 2; k > 0 && n-2 >= k {
		suspicion *= suspicionMaxTimeoutMult
	}

	retransmits := retransmitMult * int(math.Ceil(math.Log10(float64(n+1))))
	spread := time.Duration(retransmits+1) * gi

	return probeRound + suspicion + spread
}
