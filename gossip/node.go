package gossip

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrSecretMismatch is wrapped by the error Join returns when a member
// answered but would not admit this node because the cluster secrets
// (Config.SecretKey) differ, or only one side has one.
var ErrSecretMismatch = errors.New("the cluster secret differs")

// ErrShutdown is returned by Join, SetMeta and Leave after Shutdown.
var ErrShutdown = errors.New("gossip node shut down")

// ErrLeft is returned by Join and SetMeta after Leave: a node that left
// must be shut down and started again to rejoin.
var ErrLeft = errors.New("gossip node has left the cluster")

// Join's back-off between attempts.
const (
	joinBackoffMin = 100 * time.Millisecond
	joinBackoffMax = 2 * time.Second
)

// leaveSendParallelism bounds the reliable leave notices sent at once.
const leaveSendParallelism = 8

// Node is one member of a Shoal cluster's gossip layer: memberlist plus
// this node's membership view and the replicated record store. All methods
// are safe for concurrent use.
type Node struct {
	cfg   Config
	log   *slog.Logger
	ml    *memberlist.Memberlist
	store *Store
	view  *view
	del   *delegate
	// reconn remembers failed members and reconnects to them (reconnect.go).
	reconn *reconnector
	addr   string

	quit chan struct{} // closed by Shutdown
	// ctx ends when Shutdown starts; it bounds anti-entropy rounds.
	ctx    context.Context
	cancel context.CancelFunc

	sync         syncer
	staleAtStart bool
	// wg tracks the goroutines the Node starts: the large-record sender,
	// the reconnect loop, the anti-entropy loop and Leave's notice senders.
	wg sync.WaitGroup

	randMu sync.Mutex
	rand   *rand.Rand

	lifeMu sync.Mutex // orders Leave, SetMeta and Shutdown
	shut   bool
	left   bool

	shutdownOnce sync.Once
	shutdownErr  error
}

// New opens the record store at cfg.DBPath (if any), loads the persisted
// records and starts memberlist listening on cfg.BindAddr:BindPort. It does
// not join anyone: call Join. The caller must call Shutdown.
func New(cfg Config) (*Node, error) {
	c := cfg
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.Meta = bytes.Clone(c.Meta)
	c.SecretKey = bytes.Clone(c.SecretKey)
	log := c.Logger.With("node", c.Name)

	n := &Node{
		cfg:  c,
		log:  log,
		view: newView(),
		quit: make(chan struct{}),
		rand: c.Rand,
		sync: syncer{synced: map[string]bool{}, ready: make(chan struct{}), kick: make(chan struct{}, 1)},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.del = &delegate{
		log:   log,
		view:  n.view,
		large: newPump[Record](),
		push:  newPump[[]byte](),
		meta:  c.Meta,

		pushPrefixes: slices.Clone(c.PushPrefixes),
	}
	n.del.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       n.view.numAlive,
		RetransmitMult: retransmitMult,
	}
	store, err := openStore(storeConfig{
		Name:     c.Name,
		DBPath:   c.DBPath,
		TTL:      c.TombstoneTTL,
		MaxDrift: c.MaxClockDrift,
		Now:      c.Now,
		Logger:   log,
		OnApply:  n.del.onApply,
	})
	if err != nil {
		n.del.large.stop()
		n.del.push.stop()
		return nil, err
	}
	n.store = store
	n.del.store = store
	if store.Len() > 0 && store.SyncedAt().Before(c.Now().Add(-c.TombstoneTTL)) {
		n.staleAtStart = true
		log.Warn("gossip: metadata last in sync longer ago than the tombstone TTL; the tombstone rule applies until it is in sync again",
			"synced_at", store.SyncedAt(), "tombstone_ttl", c.TombstoneTTL)
	}

	ml, err := memberlist.Create(n.memberlistConfig())
	if err != nil {
		n.del.large.stop()
		n.del.push.stop()
		_ = store.close()
		if c.Transport == nil {
			addr := net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort))
			return nil, fmt.Errorf("start gossip on %s: %w", addr, err)
		}
		return nil, fmt.Errorf("start gossip: %w", err)
	}
	n.ml = ml
	for _, m := range n.view.list(func(State) bool { return true }) {
		if m.Name == c.Name {
			n.addr = m.Addr
		}
	}
	n.reconn = newReconnector(n, c.PeersFile)
	n.startReconnect(n.view.subscribe())

	n.wg.Add(2)
	go n.sendLarge()
	go n.sendPushed()
	if c.SyncDial != nil {
		events, _ := n.view.subscribe() // closed by Shutdown
		n.wg.Add(1)
		go n.runSync(events)
	}
	return n, nil
}

// memberlistConfig builds memberlist's configuration from n.cfg.
func (n *Node) memberlistConfig() *memberlist.Config {
	c := n.cfg
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.Name
	mc.BindAddr = c.BindAddr
	mc.BindPort = c.BindPort
	mc.AdvertiseAddr = c.AdvertiseAddr
	mc.AdvertisePort = cmp.Or(c.AdvertisePort, c.BindPort)
	mc.SecretKey = c.SecretKey
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.ProbeInterval = c.ProbeInterval
	mc.ProbeTimeout = c.ProbeTimeout
	mc.SuspicionMult = c.SuspicionMult
	mc.SuspicionMaxTimeoutMult = suspicionMaxTimeoutMult
	mc.RetransmitMult = retransmitMult
	mc.GossipInterval = c.GossipInterval
	mc.PushPullInterval = c.PushPullInterval
	mc.GossipToTheDeadTime = c.PushPullInterval
	// A node that died and comes back under its name from another address
	// (a restart on a new port) takes its name back at once: without this,
	// memberlist refuses the new address as a conflict until it forgets the
	// dead node (GossipToTheDeadTime, 30 s on a LAN).
	mc.DeadNodeReclaimTime = time.Nanosecond
	mc.TCPTimeout = c.TCPTimeout
	// No LZW compression of memberlist's messages. memberlist fills a
	// gossip packet up to UDPBufferSize before compressing it, so
	// compression fits no more records in a packet; it only shrinks packets
	// that are below 1.4 KB anyway, and it allocated a fresh 64 KB LZW
	// table for every packet sent (probes and their acks included) and
	// decoded every one received: the largest allocation of an agent
	// running small jobs (about 2 MB a job on the node a job was submitted
	// to), with the GC and page-returning work that follows. Receivers
	// decode compressed and plain messages alike, so nodes of either kind
	// mix in one cluster.
	mc.EnableCompression = false
	mc.Logger = newMemberlistLogger(n.log)
	mc.Delegate = n.del
	mc.Events = n.view
	mc.Transport = c.Transport
	return mc
}

// Join contacts the given members (host:port, or name/host:port) and
// merges state with every one that answers. A host that is a DNS name
// stands for every address it resolves to (Config.Resolver), looked up
// again on every attempt; this node's own address is left out, so a name
// that covers the whole cluster can be given to every member. It retries
// with exponential back-off (100ms doubling to 2s, jittered) until at
// least one other member answers, or ctx ends, or every address has
// refused this node for a secret mismatch (retrying cannot help then).
// memberlist cannot be interrupted, so an attempt under way when ctx ends
// finishes first: up to Config.TCPTimeout per unreachable address.
//
// The error names the addresses and the last cause. It wraps
// ErrSecretMismatch when a member answered but the cluster secrets differ,
// ctx.Err() when ctx ended, ErrShutdown or ErrLeft after Shutdown or Leave.
func (n *Node) Join(ctx context.Context, addrs []string) error {
	if len(addrs) == 0 {
		return errors.New("join: no addresses given")
	}
	list := strings.Join(addrs, ", ")
	backoff := joinBackoffMin
	for attempt := 1; ; attempt++ {
		if err := n.checkUsable(); err != nil {
			return fmt.Errorf("join %s: %w", list, err)
		}
		if err := ctx.Err(); err != nil && attempt == 1 {
			return fmt.Errorf("join %s: %w", list, err)
		}
		targets, failures := n.resolveJoin(ctx, addrs)
		var err error
		if len(targets) > 0 {
			var contacted int
			contacted, err = n.ml.Join(targets)
			if contacted > 0 {
				n.Settle()
				return nil
			}
			failures = append(failures, splitJoinError(err)...)
			mismatch, allMismatch := secretMismatches(failures, len(targets))
			if allMismatch {
				return mismatchError(mismatch)
			}
		}
		mismatch, _ := secretMismatches(failures, len(targets))
		n.log.Debug("gossip: join attempt failed", "attempt", attempt, "targets", targets, "err", lastCause(failures, err))

		t := time.NewTimer(n.jitter(backoff))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if mismatch != nil {
				return fmt.Errorf("%w; gave up: %w", mismatchError(mismatch), ctx.Err())
			}
			return &gaveUpError{msg: fmt.Sprintf("join %s: gave up after %d attempts, no member answered", list, attempt), ctx: ctx.Err(), cause: lastCause(failures, err)}
		case <-n.quit:
			t.Stop()
			return fmt.Errorf("join %s: %w", list, ErrShutdown)
		}
		backoff = min(2*backoff, joinBackoffMax)
	}
}

// gaveUpError is Join's error when ctx ended first: it says so in
// words and wraps ctx's error and the last cause.
type gaveUpError struct {
	msg        string
	ctx, cause error
}

func (e *gaveUpError) Error() string   { return fmt.Sprintf("%s (last cause: %v)", e.msg, e.cause) }
func (e *gaveUpError) Unwrap() []error { return []error{e.ctx, e.cause} }

// resolveTimeout bounds one lookup of a join name.
const resolveTimeout = 5 * time.Second

// resolveJoin turns Join's addresses into memberlist's: IP addresses and
// name/host:port forms as they are, a DNS name into one HOST:PORT per
// address it resolves to, without this node's own address and without
// duplicates. A name that does not resolve, or only to this node, is a
// failure of its own.
func (n *Node) resolveJoin(ctx context.Context, addrs []string) ([]string, []joinFailure) {
	self := n.Addr()
	seen := map[string]bool{}
	var out []string
	var failures []joinFailure
	add := func(a string) {
		if a != self && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || strings.Contains(a, "/") || n.cfg.Transport != nil {
			add(a) // memberlist's own forms, and mock addresses
			continue
		}
		if _, err := netip.ParseAddr(host); err == nil {
			add(a)
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		ips, err := n.cfg.Resolver(rctx, host)
		cancel()
		if err != nil {
			failures = append(failures, joinFailure{addr: a, cause: resolveError(host, err)})
			continue
		}
		before := len(out)
		for _, ip := range ips {
			add(net.JoinHostPort(ip.Unmap().String(), port))
		}
		if len(out) == before {
			failures = append(failures, joinFailure{addr: a, cause: fmt.Errorf("%s resolves to no address but this node's", host)})
		}
	}
	return out, failures
}

// resolveError says in words why host did not resolve.
func resolveError(host string, err error) error {
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Errorf("%s: no such host", host)
	case errors.As(err, &dnsErr) && dnsErr.IsTimeout, errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: the name servers did not answer in time", host)
	case errors.As(err, &dnsErr):
		return fmt.Errorf("%s: cannot resolve: %s", host, dnsErr.Err)
	}
	return fmt.Errorf("%s: cannot resolve: %w", host, err)
}

// jitter returns a delay in [d/2, d).
func (n *Node) jitter(d time.Duration) time.Duration {
	n.randMu.Lock()
	defer n.randMu.Unlock()
	return d/2 + time.Duration(n.rand.Int64N(int64(d/2)))
}

// joinFailure is memberlist's failure to join one address.
type joinFailure struct {
	addr  string
	cause error
}

// splitJoinError turns memberlist's Join error (a multierror of
// "failed to join ADDR: CAUSE" strings) into one failure per address.
func splitJoinError(err error) []joinFailure {
	if err == nil {
		return nil
	}
	var errs []error
	if w, ok := err.(interface{ WrappedErrors() []error }); ok {
		errs = w.WrappedErrors()
	} else {
		errs = []error{err}
	}
	out := make([]joinFailure, 0, len(errs))
	for _, e := range errs {
		msg := e.Error()
		f := joinFailure{cause: e}
		if rest, ok := strings.CutPrefix(msg, "failed to join "); ok {
			if addr, cause, ok := strings.Cut(rest, ": "); ok {
				f = joinFailure{addr: addr, cause: errors.New(cause)}
			}
		}
		out = append(out, f)
	}
	return out
}

// lastCause returns the cause of the last failure, or err itself.
func lastCause(fs []joinFailure, err error) error {
	if len(fs) == 0 {
		if err == nil {
			return errors.New("no member answered")
		}
		return err
	}
	f := fs[len(fs)-1]
	if f.addr == "" {
		return f.cause
	}
	return fmt.Errorf("%s: %w", f.addr, f.cause)
}

// secretMismatchCauses maps the texts memberlist (v0.7.0, net.go readStream
// and security.go) puts in a failed push/pull when the two sides' keys
// disagree to what they mean. memberlist's errors carry no type, so text is
// all there is; a test pins each case.
var secretMismatchCauses = []struct{ text, meaning string }{
	// Both sides have keys: the remote could not decrypt our push/pull and
	// answered with an error encrypted with its own key.
	{"no installed keys could decrypt the message", "neither side can decrypt the other"},
	// We have a key, the remote has none: it answered in plaintext.
	{"encryption is configured but remote state is not encrypted", "this node has a secret, the member has none"},
	// We have no key, the remote has one.
	{"remote state is encrypted and encryption is not configured", "the member requires a secret, this node has none"},
}

// mismatchFailure is a join failure recognised as a secret mismatch.
type mismatchFailure struct {
	joinFailure
	meaning string
}

// secretMismatches returns the last failure that is a secret mismatch (nil
// if none) and whether every one of the n addresses failed that way.
func secretMismatches(fs []joinFailure, n int) (*mismatchFailure, bool) {
	var last *mismatchFailure
	count := 0
	for _, f := range fs {
		msg := f.cause.Error()
		for _, c := range secretMismatchCauses {
			if strings.Contains(msg, c.text) {
				last = &mismatchFailure{joinFailure: f, meaning: c.meaning}
				count++
				break
			}
		}
	}
	return last, last != nil && count == len(fs) && len(fs) >= n
}

// mismatchError formats a secret mismatch, wrapping ErrSecretMismatch and
// memberlist's cause.
func mismatchError(m *mismatchFailure) error {
	return fmt.Errorf("join %s: not admitted: %w (%s: %w)", m.addr, ErrSecretMismatch, m.meaning, m.cause)
}

// checkUsable returns ErrShutdown or ErrLeft if the node can no longer
// join or change its metadata.
func (n *Node) checkUsable() error {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	switch {
	case n.shut:
		return ErrShutdown
	case n.left:
		return ErrLeft
	}
	return nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// Addr returns the host:port this node gossips on, as advertised to the
// others: with BindPort 0, the port actually bound.
func (n *Node) Addr() string { return n.addr }

// Records returns the node's replicated record store.
func (n *Node) Records() *Store { return n.store }

// Members returns every member this node has seen since it started,
// including itself and dead and left members, sorted by name.
func (n *Node) Members() []Member {
	return n.view.list(func(State) bool { return true })
}

// Alive returns the alive and suspect members, itself included, sorted by
// name.
func (n *Node) Alive() []Member {
	return n.view.list(func(s State) bool { return s == StateAlive || s == StateSuspect })
}

// Subscribe returns a channel of membership changes seen from now on, in
// the order memberlist reported them. To combine with the current state,
// subscribe first, then read Members. Events queue in memory until read, so
// a slow reader never holds up memberlist. cancel stops the subscription
// and closes the channel; it is safe to call more than once. Shutdown
// closes every subscription.
func (n *Node) Subscribe() (events <-chan MemberEvent, cancel func()) {
	return n.view.subscribe()
}

// SetMeta replaces the node's metadata (at most memberlist.MetaMaxSize
// bytes) and gossips it; the others see an EventUpdate. It waits up to
// Config.TCPTimeout for the update to be sent to some member, and then
// returns anyway: gossip and push/pull carry it on. SetMeta copies meta.
// It returns ErrShutdown after Shutdown and ErrLeft after Leave.
func (n *Node) SetMeta(meta []byte) error {
	if len(meta) > memberlist.MetaMaxSize {
		return fmt.Errorf("set meta: %d bytes exceeds %d", len(meta), memberlist.MetaMaxSize)
	}
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	switch {
	case n.shut:
		return fmt.Errorf("set meta: %w", ErrShutdown)
	case n.left:
		return fmt.Errorf("set meta: %w", ErrLeft)
	}
	n.del.setMeta(bytes.Clone(meta))
	if err := n.ml.UpdateNode(n.cfg.TCPTimeout); err != nil {
		n.log.Debug("gossip: meta update not yet sent; gossip will carry it", "err", err)
	}
	return nil
}

// Leave announces a graceful departure, so that the others mark this node
// left (EventLeave) rather than dead, and waits up to timeout for the
// announcement to go out. The node keeps answering gossip until Shutdown,
// which should follow. Leave is safe to call more than once; it returns
// ErrShutdown after Shutdown.
func (n *Node) Leave(timeout time.Duration) error {
	n.lifeMu.Lock()
	defer n.lifeMu.Unlock()
	if n.shut {
		return fmt.Errorf("leave: %w", ErrShutdown)
	}
	if n.left {
		return nil
	}
	n.left = true
	deadline := time.Now().Add(timeout)

	// memberlist's events cannot tell a leave from a failure, so first
	// tell everyone this is a leave: by broadcast, and reliably to each
	// alive member so the notice very likely lands before the departure.
	n.view.noteLeaving(n.cfg.Name)
	msg, err := encodeMessage(&message{Kind: kindLeave, Node: n.cfg.Name})
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	n.del.queue.QueueBroadcast(&recordBroadcast{name: "leave/" + n.cfg.Name, msg: msg})
	n.sendNotices(msg, deadline)

	if err := n.ml.Leave(max(time.Until(deadline), time.Millisecond)); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// sendNotices sends msg reliably to every alive member, a few at a time,
// and waits for the sends until deadline. Sends still running then finish
// in the background; Shutdown waits for them.
func (n *Node) sendNotices(msg []byte, deadline time.Time) {
	peers := n.view.alivePeers(n.cfg.Name)
	if len(peers) == 0 {
		return
	}
	sem := make(chan struct{}, leaveSendParallelism)
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := n.ml.SendReliable(p, msg); err != nil {
				n.log.Debug("gossip: leave notice not delivered", "to", p.Name, "err", err)
			}
		}()
	}
	done := make(chan struct{})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// sendLarge is the Node's goroutine that sends records too big for a
// broadcast reliably (TCP) to every alive member; members that miss one get
// it by push/pull. It ends when Shutdown stops the queue.
func (n *Node) sendLarge() {
	defer n.wg.Done()
	for r := range n.del.large.out {
		if cur, ok := n.store.lookup(r.Key); !ok || cur.Version != r.Version {
			continue // superseded; the newer version has its own send
		}
		msg, err := encodeMessage(&message{Kind: kindRecords, Records: []Record{r}})
		if err != nil {
			n.log.Error("gossip: cannot encode record", "key", r.Key, "err", err)
			continue
		}
		for _, p := range n.view.alivePeers(n.cfg.Name) {
			select {
			case <-n.quit:
				return
			default:
			}
			if err := n.ml.SendReliable(p, msg); err != nil {
				n.log.Debug("gossip: record not sent; push/pull will carry it", "key", r.Key, "to", p.Name, "err", err)
			}
		}
	}
}

// sendPushed is the Node's goroutine that sends the messages of local
// records under Config.PushPrefixes at once, one best-effort packet to
// each alive member, in clusters of at most Config.PushMembers. The
// gossip rounds carry the same records, so a lost packet only costs time.
// It ends when Shutdown stops the queue.
func (n *Node) sendPushed() {
	defer n.wg.Done()
	for msg := range n.del.push.out {
		peers := n.view.alivePeers(n.cfg.Name)
		if len(peers)+1 > n.cfg.PushMembers {
			continue
		}
		for _, p := range peers {
			select {
			case <-n.quit:
				return
			default:
			}
			if err := n.ml.SendBestEffort(p, msg); err != nil {
				n.log.Debug("gossip: record not pushed; the gossip rounds will carry it", "to", p.Name, "err", err)
			}
		}
	}
}

// Shutdown stops the node without announcing a departure (call Leave first
// for that): the others will declare it dead. It stops memberlist, waits
// for every goroutine of this package, closes subscriptions and watches,
// writes pending records and closes the database. It is safe to call more
// than once; later calls return the first call's result.
func (n *Node) Shutdown() error {
	n.shutdownOnce.Do(func() {
		n.lifeMu.Lock()
		n.shut = true
		close(n.quit)
		n.cancel()
		n.lifeMu.Unlock()

		var errs []error
		if err := n.ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("stop memberlist: %w", err))
		}
		n.del.large.stop()
		n.del.push.stop()
		n.wg.Wait()
		n.view.close()
		if err := n.store.close(); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			n.shutdownErr = fmt.Errorf("shutdown: %w", err)
		}
	})
	return n.shutdownErr
}
