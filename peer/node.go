package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"shoal.dev/shoal/client"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/claim"
	"shoal.dev/shoal/disk"
	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/job/streaming"
	"shoal.dev/shoal/mesh"
	"shoal.dev/shoal/p2p"
	"shoal.dev/shoal/ring"
	"shoal.dev/shoal/scheduler"
	"shoal.dev/shoal/shuffle"
	"shoal.dev/shoal/tasklog"
	"shoal.dev/shoal/worker"
)

// Version is the build's version, set by the linker.
var Version = "dev"

// ErrUnknownNode is returned for a node name that is not an alive member.
var ErrUnknownNode = errors.New("unknown node")

// nodeMeta is what a node gossips about itself, msgpack-encoded into
// memberlist's node meta (512 bytes at most).
type nodeMeta struct {
	PeerID string   `msgpack:"p"`
	Addrs  []string `msgpack:"a"`
	// Direct are the node's direct data-plane addresses (wire generation
	// 2): TLS 1.3 without the private network, admitting only members.
	// Absent: the node has none (an older release, or --p2p-direct off),
	// and streams to it go over the private network at Addrs.
	Direct  []string `msgpack:"da,omitempty"`
	HTTP    string   `msgpack:"h"`
	Version string   `msgpack:"v"`
	// Unhealthy is why the node takes no tasks (its data dir is
	// unusable); empty when it is healthy.
	Unhealthy string `msgpack:"u,omitempty"`
	// Draining is set while the node hands its blocks over before it
	// leaves: the others leave it out of the ring and give it no tasks.
	Draining bool `msgpack:"d,omitempty"`
	// Wire is the node's WireVersion; absent (0) means 1.
	Wire int `msgpack:"w,omitempty"`
	// DiskFree is the free space of the node's most constrained data
	// file system, and DiskReserve its --reserve there, in bytes, as last
	// gossiped (refreshed when the verdict flips or free space moves by a
	// tenth). DiskLow: the node takes no new blocks or tasks.
	DiskFree    int64 `msgpack:"df,omitempty"`
	DiskReserve int64 `msgpack:"dr,omitempty"`
	DiskLow     bool  `msgpack:"dl,omitempty"`
	// InlineSpec: the node reads a job spec carried in its job record
	// (scheduler.JobRecord.SpecInline). Releases before it lack the field:
	// while one is alive, specs go to spec blocks (everyAlive).
	InlineSpec bool `msgpack:"is,omitempty"`
	// EvenReducers: the node places a job's partitions by the rule
	// scheduler.JobRecord.EvenReducers names. Releases before it place
	// every job's partitions on the ring of its live participants: while
	// one is alive, jobs are submitted with that rule.
	EvenReducers bool `msgpack:"er,omitempty"`
}

// metaDirectLimit is the node meta's size beyond which a node does not
// announce its direct addresses: memberlist carries 512 bytes at most,
// and the meta grows a little later (disk figures, draining).
const metaDirectLimit = 400

// Member is one member as the API reports it.
type Member = client.Member

// Node is one running agent.
type Node struct {
	cfg Config
	log *slog.Logger

	lock   *os.File
	host   *p2p.Host
	gossip *gossip.Node
	gcfg   gossip.Config
	httpLn net.Listener
	http   *http.Server
	local  *localServer // nil: no local socket

	ring atomic.Pointer[ring.Ring]
	// inlineSpecs: every alive member reads job specs in job records
	// (everyAlive), as of the last membership change.
	inlineSpecs atomic.Bool
	// evenReducers: every alive member places partitions evenly when a
	// job record asks for it, as of the last membership change.
	evenReducers atomic.Bool

	meta       nodeMeta                  // what this node gossips about itself
	healthMu   sync.Mutex                // serializes health verdict changes
	unhealthy  atomic.Pointer[string]    // why the node is unhealthy; nil or "" when healthy
	space      *disk.Guard               // every write to the data dir's file systems
	disk       atomic.Pointer[diskState] // last measured
	diskWatch  diskWatch
	healthKick chan struct{} // a health check now, please (never blocks)
	// recovering is true from a start on reset or stale metadata until the
	// metadata is in sync with every alive member: the API answers 503.
	recovering atomic.Bool
	// startedRecovering is set once, before the node serves: it started
	// recovering.
	startedRecovering bool
	drain             drainState

	blocks     *blockstore.Store
	fs         *blockstore.FS
	repairer   *blockstore.Repairer
	scrubber   *blockstore.Scrubber // nil with NoScrub
	claims     *claim.Service
	shuffle    *shuffle.Store
	shuffleSrv *shuffle.Server
	workers    *worker.Pool
	logs       *tasklog.Store
	routes     []string // the HTTP API's patterns, set before it serves
	console    *console
	started    time.Time
	sched      *scheduler.Scheduler
	metrics    *metrics
	cancel     context.CancelFunc // stops background loops
	loops      context.Context    // what cancel ends

	mu     sync.Mutex
	byName map[string]nodeMeta // alive members' meta
	byPeer map[string]string   // peer ID -> name
	// badLogged holds, per member left out of the ring, the reason last
	// logged, so that each is logged once.
	badLogged map[string]string
	// unspokenLogged holds the member and protocol pairs already logged
	// as not spoken by the member (unspoken), so that each is logged once.
	unspokenLogged map[[2]string]bool

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New opens the data dir, starts the data plane, gossip and the HTTP
// listener. It does not join the cluster: call Start.
func New(cfg Config) (_ *Node, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := cfg.resolveListenNames(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:    cfg,
		log:    cfg.Logger.With("node", cfg.Name),
		byName: map[string]nodeMeta{},
		byPeer: map[string]string{},
		stop:   make(chan struct{}),

		healthKick: make(chan struct{}, 1),
		diskWatch:  diskWatch{need: map[string]diskNeed{}},
	}
	n.drain.reported, n.drain.leave = make(chan struct{}), make(chan struct{})
	n.space = disk.New(disk.Config{Node: cfg.Name, Reserve: *cfg.Reserve, Statfs: cfg.Statfs, OnFull: n.onDiskFull})
	n.ring.Store(ring.New(ring.Config{}))
	n.metrics = newMetrics(n)
	n.console = newConsole(cfg.Secret.ConsoleKey())
	n.started = time.Now()
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	if n.lock, err = lockDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	undo = append(undo, func() { n.lock.Close() })

	n.host, err = p2p.New(p2p.Config{
		Name:        cfg.Name,
		ListenAddrs: cfg.P2PAddrs,
		KeyFile:     filepath.Join(cfg.DataDir, "node.key"),
		PSK:         cfg.Secret.NetworkKey(),
		Logger:      n.log,

		DirectListenAddrs: cfg.P2PDirectAddrs,
	})
	if err != nil {
		return nil, fmt.Errorf("data plane: %w", err)
	}
	undo = append(undo, func() { n.host.Close() })

	var lim *connLimiter
	if n.httpLn, lim, err = n.listenHTTP(); err != nil {
		return nil, err
	}
	undo = append(undo, func() { n.httpLn.Close() })
	if n.local = n.listenLocal(); n.local != nil {
		undo = append(undo, func() { n.local.ln.Close() })
	}

	n.meta = nodeMeta{
		PeerID:       n.host.ID(),
		Addrs:        n.host.Addrs(),
		HTTP:         n.httpLn.Addr().String(),
		Version:      Version,
		Wire:         WireVersion,
		InlineSpec:   true,
		EvenReducers: true,
	}
	if n.meta.Direct = n.host.DirectAddrs(); len(n.meta.Direct) > 0 {
		if b, err := msgpack.Marshal(n.meta); err == nil && len(b) > metaDirectLimit {
			n.log.Warn("too many data-plane addresses to announce the direct plane in the node meta; members reach this node over the private network only (give --p2p and --p2p-direct fewer addresses)",
				"addrs", n.meta.Addrs, "direct", n.meta.Direct)
			n.meta.Direct = nil
		}
	}
	meta, err := msgpack.Marshal(n.meta)
	if err != nil {
		return nil, fmt.Errorf("encode node meta: %w", err)
	}
	gcfg := gossip.DefaultConfig()
	if cfg.FastGossip {
		gcfg = gossip.LocalConfig()
	}
	host, port, _ := splitHostPort("gossip", cfg.GossipAddr)
	gcfg.Name = cfg.Name
	gcfg.BindAddr, gcfg.BindPort = host, port
	if cfg.AdvertiseAddr != "" {
		gcfg.AdvertiseAddr, gcfg.AdvertisePort, _ = splitHostPort("advertise", cfg.AdvertiseAddr)
	}
	gcfg.SecretKey = cfg.Secret.GossipKey()
	gcfg.Meta = meta
	gcfg.DBPath = filepath.Join(cfg.DataDir, "meta.db")
	gcfg.PeersFile = filepath.Join(cfg.DataDir, "peers.json")
	gcfg.ReconnectInterval = cfg.ReconnectInterval
	gcfg.ReconnectTimeout = cfg.ReconnectTimeout
	gcfg.Logger = n.log
	gcfg.Resolver = cfg.Resolver
	gcfg.MaxClockDrift = cfg.MaxClockDrift
	gcfg.PushPrefixes = scheduler.PushPrefixes()
	gcfg.TombstoneTTL = cfg.TombstoneTTL
	if cfg.AntiEntropyInterval > 0 {
		gcfg.SyncInterval = cfg.AntiEntropyInterval
	}
	gcfg.SyncDial = func(ctx context.Context, member string) (gossip.SyncStream, error) {
		return n.Dial(ctx, member, syncProtocol)
	}

	if n.blocks, err = blockstore.OpenStore(filepath.Join(cfg.DataDir, "blocks"), n.space); err != nil {
		return nil, err
	}
	if err := n.openMeta(&gcfg); err != nil {
		return nil, err
	}
	n.gcfg = gcfg
	undo = append(undo, func() { n.gossip.Shutdown() })
	n.claims, err = claim.New(claim.Config{
		Self:    cfg.Name,
		Ring:    n.Ring,
		Dialer:  mesh.DialerFunc(n.Dial),
		Records: n.gossip.Records(),
		Check:   n.checkCreate,
		Sync:    n.syncCreate,
		TTL:     cfg.CreateTTL,
		Logger:  n.log,
	})
	if err != nil {
		return nil, err
	}
	n.Handle(claim.Protocol, n.claims.Handle)
	n.fs = blockstore.NewFS(blockstore.FSConfig{
		Self:     cfg.Name,
		Store:    n.blocks,
		Client:   blockstore.NewClient(mesh.DialerFunc(n.Dial)),
		Records:  n.gossip.Records(),
		Ring:     n.Ring,
		Sources:  n.drainSources,
		Logger:   n.log,
		Reserver: creates{n},
		Low:      n.lowOnDisk,
	})
	n.repairer = blockstore.NewRepairer(n.fs, blockstore.RepairConfig{
		Interval: cfg.RepairInterval, GCGrace: cfg.GCGrace,
		// Running jobs' spec blocks; n.sched is set below, before the
		// repair loop starts.
		Referenced: func() []blockstore.BlobRef { return n.sched.ReferencedBlocks() },
		// Safe mode: no block is collected as unreferenced before the
		// metadata has been in sync with every alive member since start.
		CanCollect: n.gossip.Synced,
		OnPass:     n.onRepairPass,
	})
	if !cfg.NoScrub {
		n.scrubber = blockstore.NewScrubber(n.blocks, blockstore.ScrubConfig{
			Rate: cfg.ScrubRate,
			// A copy found corrupt is fetched again at once, not at
			// the next periodic pass.
			OnCorrupt: func(blockstore.ID) { n.repairer.Kick() },
		}, n.log)
	}
	n.Handle(blockstore.Protocol, blockstore.NewServer(n.blocks, n.log).Handle)
	n.Handle(metaProtocol, n.serveMeta)
	n.Handle(syncProtocol, func(from mesh.NodeName, s mesh.Stream) { _ = n.gossip.ServeSync(from, s) })

	if killed := streaming.SweepStale(cfg.taskPGIDFile(), cfg.taskMarker()); len(killed) > 0 {
		n.log.Warn("killed task processes a previous run of this agent left behind", "pids", killed)
	}
	n.shuffle = shuffle.NewStore(filepath.Join(cfg.DataDir, "shuffle"))
	if n.logs, err = tasklog.Open(filepath.Join(cfg.DataDir, "logs"), tasklog.Options{Admit: n.space.Check}); err != nil {
		return nil, err
	}
	n.Handle(taskLogProtocol, n.serveTaskLog)
	n.Handle(nodeStatsProtocol, n.serveNodeStats)
	n.shuffleSrv = shuffle.NewServer(n.shuffle, n.log)
	if !cfg.ShuffleCompressSameHost {
		n.shuffleSrv.SameHost = p2p.SameHost
	}
	n.Handle(shuffle.Protocol, n.shuffleSrv.Handle)
	n.workers = worker.NewPool(worker.PoolConfig{Marker: cfg.taskMarker(), Logger: n.log})
	n.sched, err = scheduler.New(scheduler.Config{
		Self:          cfg.Name,
		Registry:      cfg.Registry,
		Records:       n.gossip.Records(),
		FS:            n.fs,
		Shuffle:       n.shuffle,
		Dialer:        mesh.DialerFunc(n.Dial),
		Ring:          n.Ring,
		Slots:         cfg.Slots,
		SortBuffer:    cfg.SortBuffer,
		ShuffleMemory: cfg.ShuffleMemory,
		Speculation:   cfg.Speculation,
		JobHistory:    cfg.JobHistory, JobHistoryAge: cfg.JobHistoryAge,
		BinaryGrace:   cfg.BinaryGrace,
		CanCollect:    n.gossip.Synced,
		FailedMembers: n.failedMembers,
		WorkDir:       filepath.Join(cfg.DataDir, "work"),
		Usable:        n.usable,
		Disk:          n.space,
		SyncRecords:   n.syncRecords,
		Logger:        n.log,
		Outputs:       creates{n},
		Logs:          n.logs,
		OnAttempt:     n.metrics.attemptEnded,
		OnJobEnd:      n.metrics.jobEnded,
		Workers:       n.workers,
		BinDir:        filepath.Join(cfg.DataDir, "bin"),
		InlineSpecs:   n.inlineSpecs.Load,
		EvenReducers:  n.evenReducers.Load,
	})
	if err != nil {
		return nil, err
	}

	n.http = n.newHTTPServer(lim)
	events, cancel := n.gossip.Subscribe()
	n.onMembersChanged()
	ctx, stopLoops := context.WithCancel(context.Background())
	n.cancel = stopLoops
	n.loops = ctx
	n.wg.Add(6)
	go func() {
		defer n.wg.Done()
		n.watchHealth(ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.awaitRecovery(ctx)
	}()
	go func() {
		defer n.wg.Done()
		if n.recovering.Load() {
			// The scheduler judges jobs by their records: not on a
			// namespace that is still being re-synced.
			select {
			case <-n.gossip.SyncedChan():
			case <-ctx.Done():
				return
			}
		}
		n.sched.Run(ctx)
	}()
	go func() {
		defer n.wg.Done()
		defer cancel()
		n.watchMembers(events)
	}()
	go func() {
		defer n.wg.Done()
		n.repairer.Run(ctx)
	}()
	if n.scrubber != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.scrubber.Run(ctx)
		}()
	}
	n.startConflictWatcher(ctx)
	if n.local != nil {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.serveLocal(ctx, n.local)
		}()
	}
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(n.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("http server stopped", "err", err)
		}
	}()
	return n, nil
}

// Start joins the cluster through cfg.Join, retrying until JoinTimeout, and
// writes the node's addresses to DATA_DIR/agent.json for scripts.
//
// With RetryJoin, Start does not wait: the node begins as a cluster of one
// and a background loop keeps trying Join (and the members this node knew
// before it stopped) until one answers.
func (n *Node) Start(ctx context.Context) error {
	switch {
	case len(n.cfg.Join) > 0 && n.cfg.RetryJoin:
		n.gossip.Settle()
		n.wg.Add(1)
		go n.retryJoin(n.loops)
	case len(n.cfg.Join) > 0:
		if err := n.join(ctx); err != nil {
			return err
		}
	default:
		n.gossip.Settle() // a new cluster of one
	}
	info := map[string]any{
		"name":    n.cfg.Name,
		"pid":     os.Getpid(),
		"gossip":  n.gossip.Addr(),
		"http":    n.HTTPURL(),
		"peer_id": n.host.ID(),
		"p2p":     n.host.Addrs(),
		"direct":  n.host.DirectAddrs(),
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := writeFileAtomic(filepath.Join(n.cfg.DataDir, "agent.json"), append(b, '\n')); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	n.log.Info("agent started", "gossip", n.gossip.Addr(), "http", n.HTTPURL(), "peer_id", n.host.ID(), "p2p", n.host.Addrs(), "p2p_direct", n.host.DirectAddrs(), "data_dir", n.cfg.DataDir)
	return nil
}

// joinFirstTry bounds how long Start tries the --join addresses alone
// before it adds the members this node knew before it stopped.
const joinFirstTry = 5 * time.Second

// join joins through cfg.Join within JoinTimeout. When those addresses do
// not answer and the peers file lists members (a restart), it tries them
// too, for the rest of JoinTimeout: the --join node may be the one that is
// gone.
func (n *Node) join(ctx context.Context) error {
	jctx, cancel := context.WithTimeout(ctx, n.cfg.JoinTimeout)
	defer cancel()
	known := n.gossip.KnownAddrs()
	if len(known) == 0 {
		return n.gossip.Join(jctx, n.cfg.Join)
	}
	first, cancelFirst := context.WithTimeout(jctx, min(joinFirstTry, n.cfg.JoinTimeout))
	err := n.gossip.Join(first, n.cfg.Join)
	cancelFirst()
	if err == nil || errors.Is(err, gossip.ErrSecretMismatch) || jctx.Err() != nil {
		return err
	}
	addrs := slices.Clone(n.cfg.Join)
	for _, a := range known {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	n.log.Warn("none of the --join addresses answered; trying the members this node knew before it stopped", "join", n.cfg.Join, "known", known)
	return n.gossip.Join(jctx, addrs)
}

// retryJoin tries the --join addresses, and the members this node knew
// before it stopped, until one answers or the node stops.
func (n *Node) retryJoin(ctx context.Context) {
	defer n.wg.Done()
	addrs := slices.Clone(n.cfg.Join)
	for _, a := range n.gossip.KnownAddrs() {
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	n.log.Info("retry-join: trying the --join addresses in the background", "join", addrs)
	err := n.gossip.Join(ctx, addrs)
	switch {
	case err == nil:
		n.log.Info("retry-join: joined", "alive", len(n.gossip.Alive()))
	case ctx.Err() == nil:
		n.log.Error("retry-join: stopped trying", "err", err)
	}
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// HTTPURL is the API's base URL.
func (n *Node) HTTPURL() string {
	if n.cfg.TLSCert != "" {
		return "https://" + n.httpLn.Addr().String()
	}
	return "http://" + n.httpLn.Addr().String()
}

// GossipAddr is the gossip HOST:PORT actually bound.
func (n *Node) GossipAddr() string { return n.gossip.Addr() }

// PeerID is the node's libp2p peer ID.
func (n *Node) PeerID() string { return n.host.ID() }

// DirectAddrs are the multiaddrs of the node's direct data plane; none
// when it runs none (--p2p-direct off).
func (n *Node) DirectAddrs() []string { return n.host.DirectAddrs() }

// Ring is the current ring of alive members.
func (n *Node) Ring() *ring.Ring { return n.ring.Load() }

// FS is the cluster file system as this node sees it.
func (n *Node) FS() *blockstore.FS { return n.fs }

// Scheduler is the node's part of every job.
func (n *Node) Scheduler() *scheduler.Scheduler { return n.sched }

// LocalBlocks is the node's local block store.
func (n *Node) LocalBlocks() *blockstore.Store { return n.blocks }

// Repairer is the node's block repair loop.
func (n *Node) Repairer() *blockstore.Repairer { return n.repairer }

// Scrubber is the node's background block scrub; nil when it is off
// (Config.NoScrub).
func (n *Node) Scrubber() *blockstore.Scrubber { return n.scrubber }

// Records is the replicated metadata store.
func (n *Node) Records() *gossip.Store { return n.gossip.Records() }

// FailureDetectionTime bounds how long the cluster takes to mark a member
// that stopped without leaving as dead.
func (n *Node) FailureDetectionTime() time.Duration {
	return n.gcfg.FailureDetectionTime(max(n.Ring().Len(), 1))
}

// failedMembers counts the members this node knows as failed and has not
// given up on (gossip's ReconnectTimeout): those it knows of, alive or
// failed but not left (itself included), less those alive.
func (n *Node) failedMembers() int {
	return max(0, len(n.gossip.KnownAddrs())+1-len(n.gossip.Alive()))
}

// Members lists every member known, with the data-plane details of those
// that gossiped them.
func (n *Node) Members() []Member {
	var out []Member
	for _, m := range n.gossip.Members() {
		var meta nodeMeta
		var incompatible string
		wire := 0
		if err := msgpack.Unmarshal(m.Meta, &meta); err != nil { // a member with bad meta still shows
			incompatible = "incompatible: its metadata does not decode (a format this node cannot read)"
		} else if wire = wireOf(meta); !wireCompatible(WireVersion, wire) {
			incompatible = wireMismatch(WireVersion, wire)
		}
		out = append(out, Member{
			Wire:         wire,
			Incompatible: incompatible,
			Name:         m.Name,
			Gossip:       m.Addr,
			State:        m.State.String(),
			PeerID:       meta.PeerID,
			P2PAddrs:     meta.Addrs,
			HTTP:         meta.HTTP,
			Version:      meta.Version,
			Unhealthy:    meta.Unhealthy,
			Draining:     meta.Draining,
			DiskFree:     meta.DiskFree,
			DiskReserve:  meta.DiskReserve,
			LowDisk:      meta.DiskLow,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// watchMembers keeps the peerstore and the ring in step with membership.
func (n *Node) watchMembers(events <-chan gossip.MemberEvent) {
	for {
		select {
		case <-n.stop:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			n.console.event(time.Now(), ev.String())
			n.onMembersChanged()
		}
	}
}

// onMembersChanged rebuilds the peer tables and ring from the alive set.
func (n *Node) onMembersChanged() {
	names, byName, byPeer, bad := ringView(n.gossip.Alive(), WireVersion)
	if n.draining() {
		names = slices.DeleteFunc(names, func(s string) bool { return s == n.cfg.Name })
	}
	n.mu.Lock()
	if n.badLogged == nil {
		n.badLogged = map[string]string{}
	}
	for name, err := range bad {
		if n.badLogged[name] != err.Error() {
			n.badLogged[name] = err.Error()
			n.log.Warn("member left out of the ring: this node cannot speak to it", "member", name, "why", err.Error())
		}
	}
	for name := range n.badLogged {
		if bad[name] == nil {
			delete(n.badLogged, name)
		}
	}
	n.mu.Unlock()
	for name, meta := range byName {
		if name != n.cfg.Name {
			if err := n.host.AddPeer(meta.PeerID, meta.Addrs); err != nil {
				n.log.Warn("member has bad data-plane address", "member", name, "err", err)
			} else if err := n.host.SetDirect(meta.PeerID, meta.Direct); err != nil {
				n.log.Warn("member has bad direct data-plane address", "member", name, "err", err)
			}
		}
	}
	n.inlineSpecs.Store(everyAlive(byName, bad, func(m nodeMeta) bool { return m.InlineSpec }))
	n.evenReducers.Store(everyAlive(byName, bad, func(m nodeMeta) bool { return m.EvenReducers }))
	n.mu.Lock()
	old := n.byPeer
	n.byName, n.byPeer = byName, byPeer
	n.mu.Unlock()
	for id := range old {
		if _, ok := byPeer[id]; !ok && id != n.host.ID() {
			n.host.RemovePeer(id)
		}
	}
	n.ring.Store(ring.New(ring.Config{}, names...))
	if n.claims != nil {
		n.claims.RingChanged()
	}
	if n.repairer != nil {
		n.repairer.Kick()
	}
	if n.sched != nil {
		n.sched.Kick()
	}
	if n.gossip != nil {
		n.gossip.KickSync() // the data-plane tables now know the new members
	}
}

// everyAlive decides whether a feature that older releases lack may be
// used: only when every alive member announces it in its meta (has). A
// member whose meta does not decode, or whose wire formats this node
// cannot speak, counts as one that does not.
func everyAlive(byName map[string]nodeMeta, bad map[string]error, has func(nodeMeta) bool) bool {
	if len(bad) > 0 || len(byName) == 0 {
		return false
	}
	for _, m := range byName {
		if !has(m) {
			return false
		}
	}
	return true
}

// ringView decides which alive members take part: those whose gossiped
// metadata decodes, names a peer ID and announces wire formats compatible
// with generation wire (wireCompatible), and that are not draining. A
// member without usable metadata cannot be reached over the data plane,
// and one whose formats this node cannot speak must not be sent them, so
// neither owns any part of the ring; bad says why each one was left out.
// A draining member stays in the peer tables: its blocks are still read.
func ringView(alive []gossip.Member, wire int) (names []string, byName map[string]nodeMeta, byPeer map[string]string, bad map[string]error) {
	byName = make(map[string]nodeMeta, len(alive))
	byPeer = make(map[string]string, len(alive))
	bad = map[string]error{}
	for _, m := range alive {
		var meta nodeMeta
		err := msgpack.Unmarshal(m.Meta, &meta)
		if err != nil {
			err = fmt.Errorf("its metadata does not decode (a format this node cannot read): %w", err)
		}
		if err == nil && meta.PeerID == "" {
			err = errors.New("no peer ID")
		}
		if err == nil && !wireCompatible(wire, wireOf(meta)) {
			err = errors.New(wireMismatch(wire, wireOf(meta)))
		}
		if err != nil {
			bad[m.Name] = err
			continue
		}
		if !meta.Draining {
			names = append(names, m.Name)
		}
		byName[m.Name] = meta
		byPeer[meta.PeerID] = m.Name
	}
	return names, byName, byPeer, bad
}

// Dial opens a data-plane stream to the named alive member.
func (n *Node) Dial(ctx context.Context, node mesh.NodeName, protocol string) (mesh.Stream, error) {
	id, err := n.peerID(node)
	if err != nil {
		return nil, err
	}
	s, err := n.host.NewStream(ctx, id, protocol)
	if errors.Is(err, p2p.ErrUnsupportedProtocol) {
		return nil, n.unspoken(node, protocol)
	}
	return s, err
}

// Handle serves a data-plane protocol; the handler learns the caller's node
// name. Streams from peers that are not alive members are reset.
func (n *Node) Handle(protocol string, h mesh.StreamHandler) {
	n.host.Handle(protocol, func(peerID string, s mesh.Stream) {
		n.mu.Lock()
		name, ok := n.byPeer[peerID]
		n.mu.Unlock()
		if !ok {
			n.log.Warn("stream from a peer that is not a member", "peer_id", peerID, "protocol", protocol)
			s.Reset()
			return
		}
		h(name, s)
	})
}

// Ping proves the data plane to the named member.
func (n *Node) Ping(ctx context.Context, node string) (p2p.PingResult, error) {
	if node == n.cfg.Name {
		return p2p.PingResult{Name: node, PeerID: n.host.ID()}, nil
	}
	id, err := n.peerID(node)
	if err != nil {
		return p2p.PingResult{}, err
	}
	return n.host.Ping(ctx, id)
}

func (n *Node) peerID(node string) (string, error) {
	n.mu.Lock()
	meta, ok := n.byName[node]
	n.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("%w %q: not an alive member", ErrUnknownNode, node)
	}
	return meta.PeerID, nil
}

// Shutdown leaves the cluster gracefully, so others see "left" rather than
// "failed", then closes the node. Safe to call twice.
func (n *Node) Shutdown(ctx context.Context) error {
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if err := n.gossip.Leave(timeout); err != nil {
		n.log.Warn("leave", "err", err)
	}
	return n.Close()
}

// Close stops the node at once without telling the cluster, as a crash
// would. Safe to call twice; blocks until every goroutine has stopped.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		close(n.stop)
		n.cancel()
		n.drain.mu.Lock()
		if n.drain.retry != nil {
			n.drain.retry.Stop()
		}
		n.drain.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		errs := []error{n.http.Shutdown(ctx)}
		errs = append(errs, n.gossip.Shutdown())
		errs = append(errs, n.host.Close())
		n.wg.Wait()
		if n.workers != nil {
			n.workers.Close()
		}
		errs = append(errs, n.lock.Close())
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// lockDataDir creates the data dir and takes an exclusive lock on it, so two
// agents never share one.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another agent", dir)
	}
	// A probe write proves the directory is writable (root ignores modes,
	// but not read-only file systems).
	if err := writeFileAtomic(filepath.Join(dir, ".probe"), nil); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return f, nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
