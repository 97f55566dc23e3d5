// Package peer assembles a Shoal node: it owns the configuration and
// lifecycle of one agent, wires gossip, the ring and the data plane
// together, and serves the HTTP API. It is the only package that knows all
// the others.
package peer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/disk"
	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
	"shoal.dev/shoal/job/streaming"
	"shoal.dev/shoal/scheduler"
	"shoal.dev/shoal/secret"
)

// Config describes one agent. Every field has a documented default that
// validate fills; nobody changes a Config after New.
type Config struct {
	// Name is the node's unique, stable name. Default: host name and gossip
	// port, "myhost-7946".
	Name string
	// DataDir holds the node's identity key, metadata and blocks. Default:
	// $XDG_DATA_HOME/shoal/NAME (~/.local/share/shoal/NAME).
	DataDir string
	// GossipAddr is the memberlist bind address, HOST:PORT. Port 0 picks a
	// free port. Default "127.0.0.1:7946".
	GossipAddr string
	// AdvertiseAddr is the gossip address other members reach us at, when it
	// differs from GossipAddr (NAT, 0.0.0.0 binds). Default: none.
	AdvertiseAddr string
	// Join lists gossip addresses of members to join. Empty starts a new
	// cluster.
	Join []string
	// JoinTimeout bounds the retries of Join. Default 30s.
	JoinTimeout time.Duration
	// RetryJoin makes Start return at once, the node a cluster of one if no
	// member answers yet, and keeps trying Join in the background until one
	// answers, however long that takes (Consul's retry_join). Host names in
	// Join are looked up again on every attempt.
	RetryJoin bool
	// Resolver looks up the host names in Join (every address a name
	// resolves to is joined). Default: the system's resolver.
	Resolver func(ctx context.Context, host string) ([]netip.Addr, error)
	// P2PAddrs are the libp2p listen multiaddrs. Default
	// "/ip4/127.0.0.1/tcp/0": loopback, any free port.
	P2PAddrs []string
	// P2PDirectAddrs are the listen multiaddrs of the direct data plane
	// (TLS 1.3 without the private network; members only). Default: each
	// of P2PAddrs' IPs on a free port. []string{"off"}: no direct plane.
	P2PDirectAddrs []string
	// HTTPAddr is the client API's HOST:PORT. Port 0 picks a free port.
	// Default "127.0.0.1:7470".
	HTTPAddr string
	// Secret keys gossip encryption, the libp2p private network and the API
	// token. The zero Secret runs an open cluster, loopback only unless
	// Insecure is set.
	Secret secret.Secret
	// Insecure allows listening on non-loopback addresses without a secret,
	// and the HTTP API on a non-loopback address without TLS.
	Insecure bool
	// TLSCert and TLSKey are PEM files of the HTTP API's certificate and
	// key; set both or neither. Without them the API speaks plain HTTP,
	// loopback only unless Insecure is set.
	TLSCert, TLSKey string
	// HealthInterval is how often the node checks that its data dir is
	// usable; an unhealthy node answers /v1/health with 503 and takes no
	// tasks. Default DefaultHealthInterval.
	HealthInterval time.Duration
	// Reserve is the free space the node keeps on each file system it
	// writes (the data dir, and its blocks, shuffle and work dirs when
	// they are mounts of their own): a block write, repair copy, spill,
	// merge or output spool that would leave less is refused at the door,
	// and below it the node takes no new blocks or tasks. nil means
	// disk.DefaultReserve (1 GiB, at most 5% of the file system); the
	// zero Reserve keeps none (only a real ENOSPC stops a write).
	Reserve *disk.Reserve
	// Statfs measures a file system; default disk.SysStatfs. For tests.
	Statfs disk.Statfs
	// MaxConns caps the HTTP API's open connections (see connLimiter).
	// Default DefaultMaxConns.
	MaxConns int
	// APIReadTimeout bounds reading a request's headers, and each wait for
	// more of its body. Default 30s.
	APIReadTimeout time.Duration
	// APIWriteTimeout bounds a handler's answer, counted from the request
	// or from its last body bytes read, and each wait to write more of a
	// streamed answer. Default 2m.
	APIWriteTimeout time.Duration
	// APIIdleTimeout closes keep-alive connections idle this long.
	// Default 1m.
	APIIdleTimeout time.Duration
	// FastGossip uses memberlist's local-network timings (fast failure
	// detection) instead of its LAN timings. For tests and one-machine
	// clusters.
	FastGossip bool
	// ReconnectInterval is the time between attempts to join one member
	// that failed (not left), so that the halves of a healed partition
	// find each other. Default 30s.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a failed member is tried before it is
	// forgotten. Default 24h.
	ReconnectTimeout time.Duration
	// RepairInterval is the period of the block repair loop, which also runs
	// on every membership change. Default 10s.
	RepairInterval time.Duration
	// GCGrace is how long an unreferenced block is kept before it is
	// collected. Default 10m.
	GCGrace time.Duration
	// ScrubRate is the bytes per second the background scrub reads to
	// verify the stored blocks against their IDs (blockstore.Scrubber).
	// Default blockstore.DefaultScrubRate (8 MiB/s).
	ScrubRate int64
	// NoScrub turns the background scrub off (--scrub-rate 0): blocks are
	// then checked only when read.
	NoScrub bool
	// MaxClockDrift is how far ahead of this node's clock a remote metadata
	// record's version may be; records further ahead are rejected, logged
	// and counted (shoal_meta_rejected_ahead_total), never merged. Default
	// 1m.
	MaxClockDrift time.Duration
	// TombstoneTTL is how long a deletion is remembered before its tombstone
	// is collected; a node whose metadata was last in sync longer ago than
	// this re-syncs under the tombstone rule when it comes back. Default
	// 24h.
	TombstoneTTL time.Duration
	// AntiEntropyInterval is the time between anti-entropy rounds with a
	// random alive member. Default 10s (1s with FastGossip).
	AntiEntropyInterval time.Duration
	// RecoverMeta moves an unusable meta.db (empty, corrupt, or missing
	// while blocks are present) aside, starts with empty metadata,
	// re-syncs it from the alive members and only then serves. Without it
	// such a meta.db is an error.
	RecoverMeta bool
	// Registry holds the jobs this node can run. Default: the built-in
	// jobs, Hadoop Streaming and Jobs.
	Registry *job.Registry
	// Jobs are added to the default Registry (not to a given one): the
	// jobs of a program that runs cli.Main with its own jobs.
	Jobs []job.Spec
	// Slots bounds the tasks computing at once. Default: the number of
	// CPUs.
	Slots int
	// SortBuffer is each map task's sort buffer in bytes. Default
	// shuffle.DefaultBufferBytes (128 MiB).
	SortBuffer int
	// ShuffleCompressSameHost compresses map output that a job asks
	// compressed (--map-output-compression) also when the reducer is on
	// this node's host; by default such segments go plain
	// (shuffle.Server.SameHost): they cross no network. For tests and
	// measurements of the codecs on one machine.
	ShuffleCompressSameHost bool
	// ShuffleMemory bounds the fetched map output this node's reducers
	// hold in memory rather than spool to disk. Default
	// scheduler.DefaultShuffleMemory; negative: spool everything.
	ShuffleMemory int64
	// Speculation is the straggler rule of this node's scheduler: zero
	// takes the defaults; Off (--no-speculation) starts no backup attempts
	// here.
	Speculation scheduler.Speculation
	// JobHistory is how many ended jobs the cluster remembers (their
	// summaries); older ones are deleted. Default scheduler.DefaultJobHistory.
	JobHistory int
	// JobHistoryAge, if positive, also forgets jobs that ended longer ago.
	JobHistoryAge time.Duration
	// BinaryGrace is how long a shipped program no running job uses is
	// kept after it was stored and after the last job using it ended
	// (scheduler.Config.BinaryGrace); 0: an hour.
	BinaryGrace time.Duration
	// CreateTTL is the lease of a create reservation (a put without
	// --force, a job's output): a writer renews it every third of it, and a
	// node that becomes the primary of a path, or starts, grants no new
	// reservation of it for this long. Every member must use the same.
	// Default 10s, 3s with FastGossip.
	CreateTTL time.Duration
	// Logger receives the node's logs. Default slog.Default().
	Logger *slog.Logger
	// TaskUser, if set, is the user (name or numeric ID) that the
	// commands of jobs run as (Hadoop Streaming's children), in that
	// user's primary group; the agent needs root to switch. Default: the
	// agent's own user.
	TaskUser string

	taskCred *syscall.Credential // TaskUser, looked up by validate
}

// Default values.
const (
	DefaultGossipAddr   = "127.0.0.1:7946"
	DefaultHTTPAddr     = "127.0.0.1:7470"
	DefaultP2PAddr      = "/ip4/127.0.0.1/tcp/0"
	DefaultJoinTimeout  = 30 * time.Second
	DefaultRepair       = 10 * time.Second
	DefaultGCGrace      = 10 * time.Minute
	DefaultClockDrift   = gossip.DefaultMaxClockDrift
	DefaultTombstoneTTL = 24 * time.Hour
	DefaultAntiEntropy  = 10 * time.Second
	DefaultCreateTTL    = 10 * time.Second
	FastCreateTTL       = 3 * time.Second
)

// DefaultReconnect and DefaultReconnectTimeout are Serf's defaults.
const (
	DefaultReconnect        = 30 * time.Second
	DefaultReconnectTimeout = 24 * time.Hour
)

// DefaultConfig returns a configuration for a single node on loopback with
// default ports.
func DefaultConfig() Config {
	return Config{
		GossipAddr:  DefaultGossipAddr,
		HTTPAddr:    DefaultHTTPAddr,
		P2PAddrs:    []string{DefaultP2PAddr},
		JoinTimeout: DefaultJoinTimeout,
	}
}

// validate fills defaults and rejects bad values.
func (c *Config) validate() error {
	if c.GossipAddr == "" {
		c.GossipAddr = DefaultGossipAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if len(c.P2PAddrs) == 0 {
		c.P2PAddrs = []string{DefaultP2PAddr}
	}
	switch {
	case len(c.P2PDirectAddrs) == 1 && c.P2PDirectAddrs[0] == "off":
		c.P2PDirectAddrs = nil
	case slices.Contains(c.P2PDirectAddrs, "off"):
		return fmt.Errorf("p2p direct addresses %v: \"off\" stands alone", c.P2PDirectAddrs)
	case len(c.P2PDirectAddrs) == 0:
		c.P2PDirectAddrs = directDefault(c.P2PAddrs)
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = DefaultJoinTimeout
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = DefaultHealthInterval
	}
	if c.Reserve == nil {
		r := disk.DefaultReserve
		c.Reserve = &r
	}
	if c.Reserve.Bytes < 0 || c.Reserve.Percent < 0 || c.Reserve.Percent > disk.MaxPercent {
		return fmt.Errorf("reserve %v: must be a size of at least 0, or 0%% to %d%%", c.Reserve, disk.MaxPercent)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.CreateTTL < 0:
		return fmt.Errorf("create TTL %v: must not be negative", c.CreateTTL)
	case c.CreateTTL == 0 && c.FastGossip:
		c.CreateTTL = FastCreateTTL
	case c.CreateTTL == 0:
		c.CreateTTL = DefaultCreateTTL
	}
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.APIReadTimeout <= 0 {
		c.APIReadTimeout = DefaultAPIReadTimeout
	}
	if c.APIWriteTimeout <= 0 {
		c.APIWriteTimeout = DefaultAPIWriteTimeout
	}
	if c.APIIdleTimeout <= 0 {
		c.APIIdleTimeout = DefaultAPIIdleTimeout
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("TLS needs both a certificate and a key (--tls-cert and --tls-key)")
	}
	if c.ReconnectInterval < 0 || c.ReconnectTimeout < 0 {
		return fmt.Errorf("reconnect interval %v and timeout %v must not be negative", c.ReconnectInterval, c.ReconnectTimeout)
	}
	if c.ReconnectInterval == 0 {
		c.ReconnectInterval = DefaultReconnect
	}
	if c.ReconnectTimeout == 0 {
		c.ReconnectTimeout = DefaultReconnectTimeout
	}
	if c.RepairInterval <= 0 {
		c.RepairInterval = DefaultRepair
	}
	if c.GCGrace <= 0 {
		c.GCGrace = DefaultGCGrace
	}
	if c.ScrubRate < 0 {
		return fmt.Errorf("scrub rate %d B/s is negative", c.ScrubRate)
	}
	if c.ScrubRate == 0 {
		c.ScrubRate = blockstore.DefaultScrubRate
	}
	if c.MaxClockDrift < 0 {
		return fmt.Errorf("max clock drift %v is negative", c.MaxClockDrift)
	}
	if c.MaxClockDrift == 0 {
		c.MaxClockDrift = DefaultClockDrift
	}
	if c.TombstoneTTL < 0 {
		return fmt.Errorf("tombstone TTL %v is negative", c.TombstoneTTL)
	}
	if c.TombstoneTTL == 0 {
		c.TombstoneTTL = DefaultTombstoneTTL
	}
	if c.AntiEntropyInterval < 0 {
		return fmt.Errorf("anti-entropy interval %v is negative", c.AntiEntropyInterval)
	}
	gossipHost, gossipPort, err := splitHostPort("gossip bind address", c.GossipAddr)
	if err != nil {
		return err
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitHostPort("advertise address", c.AdvertiseAddr); err != nil {
			return err
		}
	}
	httpHost, _, err := splitHostPort("http address", c.HTTPAddr)
	if err != nil {
		return err
	}
	for _, j := range c.Join {
		if _, _, err := splitHostPort("join address", j); err != nil {
			return err
		}
	}
	if c.Name == "" {
		c.Name = defaultName(gossipPort)
	}
	if err := validName(c.Name); err != nil {
		return err
	}
	if c.DataDir == "" {
		c.DataDir = defaultDataDir(c.Name)
	}
	if c.TaskUser != "" {
		cred, err := lookupTaskUser(c.TaskUser)
		if err != nil {
			return err
		}
		c.taskCred = cred
	}
	if c.Registry == nil {
		c.Registry = job.NewRegistry()
		builtin.Register(c.Registry)
		spec, err := streaming.NewSpec(c.streamingConfig())
		if err == nil {
			err = c.Registry.Register(spec)
		}
		for _, s := range c.Jobs {
			if err == nil {
				err = c.Registry.Register(s)
			}
		}
		if err != nil {
			return err
		}
	}
	if c.TLSCert == "" && !c.Insecure && !isLoopback(httpHost) {
		return fmt.Errorf("refusing to serve the HTTP API on %q without TLS: the API token would cross the network in clear; set --tls-cert and --tls-key, or pass --insecure", c.HTTPAddr)
	}
	if c.Secret.IsZero() && !c.Insecure {
		hosts := []string{gossipHost, httpHost}
		for _, a := range append(slices.Clone(c.P2PAddrs), c.P2PDirectAddrs...) {
			hosts = append(hosts, multiaddrHost(a))
		}
		for _, h := range hosts {
			if !isLoopback(h) {
				return fmt.Errorf("refusing to listen on %q without a cluster secret: set --secret-file or SHOAL_SECRET, or pass --insecure", h)
			}
		}
	}
	return nil
}

func splitHostPort(what, addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: want HOST:PORT", what, addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("%s %q: bad port %q", what, addr, port)
	}
	return host, p, nil
}

// validName accepts names that are safe in keys, paths and URLs.
func validName(name string) error {
	if len(name) > 64 {
		return fmt.Errorf("node name %q: longer than 64 bytes", name)
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("node name %q: use letters, digits, '-', '_' and '.' only", name)
		}
	}
	return nil
}

func defaultName(port int) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "shoal"
	}
	host, _, _ = strings.Cut(host, ".")
	var b strings.Builder
	for _, r := range host {
		if validName(string(r)) == nil {
			b.WriteRune(r)
		}
	}
	if port == 0 {
		return fmt.Sprintf("%s-%d", b.String(), os.Getpid())
	}
	return fmt.Sprintf("%s-%d", b.String(), port)
}

func defaultDataDir(name string) string {
	base := os.Getenv("XDG_DATA_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "shoal", name)
}

// isLoopback reports whether host names only loopback addresses. An empty
// host or 0.0.0.0 means every interface, so it is not loopback.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// multiaddrHost pulls the IP out of "/ip4/X/tcp/N" or "/ip6/X/tcp/N"; other
// forms (DNS names too) return "" — not loopback, so they need a secret.
func multiaddrHost(ma string) string {
	parts := strings.Split(ma, "/")
	if len(parts) >= 3 && (parts[1] == "ip4" || parts[1] == "ip6") {
		return parts[2]
	}
	return ""
}

// lookupTaskUser resolves --task-user to a credential: the user's ID and
// primary group, no supplementary groups.
func lookupTaskUser(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return nil, fmt.Errorf("task user %q: no such user", name)
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("task user %q: not a numeric user and group ID (%s:%s)", name, u.Uid, u.Gid)
	}
	if uint64(os.Geteuid()) != uid && os.Geteuid() != 0 {
		return nil, fmt.Errorf("task user %q: the agent must run as root to run tasks as another user", name)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// streamingConfig is Hadoop Streaming's configuration on this node: its
// children run as TaskUser, are recorded in DATA_DIR/tasks.pgid and carry
// a marker of the data dir, for the sweep at the next start.
func (c *Config) streamingConfig() streaming.Config {
	sc := streaming.DefaultConfig()
	sc.Credential = c.taskCred
	sc.Tracker = streaming.NewPGIDFile(c.taskPGIDFile())
	sc.Marker = c.taskMarker()
	return sc
}

func (c *Config) taskPGIDFile() string { return filepath.Join(c.DataDir, "tasks.pgid") }

// taskMarker names the data dir, whatever its spelling.
func (c *Config) taskMarker() string {
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		dir = c.DataDir
	}
	sum := sha256.Sum256([]byte(dir))
	return hex.EncodeToString(sum[:12])
}

// directDefault is the direct plane's default listen addresses: each IP of
// p2p (the private network's listen multiaddrs) once, on a free port.
// Addresses it cannot read are left to the p2p package to refuse.
func directDefault(p2p []string) []string {
	var out []string
	for _, a := range p2p {
		parts := strings.Split(a, "/") // "", "ip4", HOST, "tcp", PORT
		if len(parts) != 5 || parts[0] != "" || parts[3] != "tcp" {
			continue
		}
		d := strings.Join(append(parts[:3:3], "tcp", "0"), "/")
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}
