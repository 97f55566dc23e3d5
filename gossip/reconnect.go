package gossip

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Reconnecting to failed members (Serf's rule). memberlist stops probing a
// member once it has declared it dead, and gossips to the dead only for a
// short while, so two halves of a partition that each declared the other
// dead never meet again by themselves. A Node therefore remembers the last
// known address of every member that failed (not left), and every
// ReconnectInterval tries to join one of them, chosen at random; a member
// failed for longer than ReconnectTimeout is given up on and reaped. The
// decision is PlanReconnect, a pure function; the Node's reconnect loop
// only applies it.

// Candidate is a member that failed (was declared dead without leaving) as
// this node last saw it.
type Candidate struct {
	// Name is the member's name.
	Name string
	// Addr is its last known gossip address, host:port.
	Addr string
	// FailedAt is when this node saw it fail (for a member loaded from the
	// peers file that was alive when this node stopped: when the file was
	// loaded).
	FailedAt time.Time
}

// ReconnectPlan is what one reconnect round does.
type ReconnectPlan struct {
	// Try is the candidate to join this round; its Name is "" for none.
	Try Candidate
	// Reap lists, sorted, the members failed for at least the reconnect
	// timeout: they are forgotten and no longer tried.
	Reap []string
}

// PlanReconnect decides one reconnect round at time now, for the failed
// members and alive, the number of alive members this node sees (itself
// included). A candidate failed for timeout or longer is reaped. Among the
// others, Serf's rule: the round tries one, picked uniformly at random,
// with probability min(1, failed/alive), so that the cluster as a whole
// tries each failed member about once per interval however large it is.
// The result does not depend on the order of failed; rng is the only
// source of randomness (rounds draw from it only when there is a choice).
func PlanReconnect(now time.Time, failed []Candidate, alive int, timeout time.Duration, rng *rand.Rand) ReconnectPlan {
	var plan ReconnectPlan
	var live []Candidate
	for _, c := range failed {
		if now.Sub(c.FailedAt) >= timeout {
			plan.Reap = append(plan.Reap, c.Name)
			continue
		}
		live = append(live, c)
	}
	slices.Sort(plan.Reap)
	if len(live) == 0 {
		return plan
	}
	slices.SortFunc(live, func(a, b Candidate) int { return strings.Compare(a.Name, b.Name) })
	prob := float64(len(live)) / float64(max(alive, 1))
	if prob < 1 && rng.Float64() >= prob {
		return plan
	}
	plan.Try = live[rng.IntN(len(live))]
	return plan
}

// ReconnectStats counts the reconnect loop's work since the node started.
type ReconnectStats struct {
	// Attempts is the number of joins tried to failed members.
	Attempts int64
	// Successes is the number of those joins a member answered.
	Successes int64
	// Reaped is the number of failed members given up on.
	Reaped int64
	// Merges is the number of times members this node had marked failed
	// came back alive (a healed partition or restarted members).
	Merges int64
}

// knownMember is the reconnect loop's record of one member.
type knownMember struct {
	Addr     string
	FailedAt time.Time // zero while alive
}

// reconnector is the Node's reconnect state. The loop goroutine changes
// it; Known and Stats read it under mu.
type reconnector struct {
	n    *Node
	path string // peers file; "" keeps nothing on disk

	mu    sync.Mutex
	known map[string]knownMember

	attempts, successes, reaped, merges atomic.Int64
}

// newReconnector loads the peers file. Every member in it is a candidate
// until it is seen alive: one that was failed keeps its failure time, one
// that was alive when this node stopped counts as failed from now.
func newReconnector(n *Node, path string) *reconnector {
	r := &reconnector{n: n, path: path, known: map[string]knownMember{}}
	if path == "" {
		return r
	}
	peers, err := loadPeers(path)
	if err != nil {
		n.log.Warn("gossip: ignoring the peers file; this node will not reconnect to members it knew before the restart", "err", err)
		return r
	}
	now := n.cfg.Now()
	for _, p := range peers {
		if p.Name == n.cfg.Name || p.Addr == "" {
			continue
		}
		failedAt := p.FailedAt
		if failedAt.IsZero() {
			failedAt = now
		}
		r.known[p.Name] = knownMember{Addr: p.Addr, FailedAt: failedAt}
	}
	return r
}

// knownAddrs returns the addresses of the members in the peers file or
// seen since, other than this node, sorted by name.
func (r *reconnector) knownAddrs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.known))
	for name := range r.known {
		names = append(names, name)
	}
	slices.Sort(names)
	addrs := make([]string, 0, len(names))
	for _, name := range names {
		addrs = append(addrs, r.known[name].Addr)
	}
	return addrs
}

// candidates returns the members known failed.
func (r *reconnector) candidates() []Candidate {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Candidate
	for name, k := range r.known {
		if !k.FailedAt.IsZero() {
			out = append(out, Candidate{Name: name, Addr: k.Addr, FailedAt: k.FailedAt})
		}
	}
	return out
}

// apply records one membership event. It returns the member and true when
// a member this node had marked failed is alive again, and whether the
// known set changed.
func (r *reconnector) apply(e MemberEvent, now time.Time) (back *Candidate, changed bool) {
	m := e.Member
	if m.Name == r.n.cfg.Name {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.known[m.Name]
	switch e.Type {
	case EventJoin, EventUpdate:
		if e.Type == EventUpdate && m.State != StateAlive && m.State != StateSuspect {
			if had && old.Addr != m.Addr {
				old.Addr = m.Addr
				r.known[m.Name] = old
				return nil, true
			}
			return nil, false
		}
		r.known[m.Name] = knownMember{Addr: m.Addr}
		if had && !old.FailedAt.IsZero() {
			back = &Candidate{Name: m.Name, Addr: old.Addr, FailedAt: old.FailedAt}
		}
		return back, !had || old != r.known[m.Name]
	case EventFail:
		if had && !old.FailedAt.IsZero() && old.Addr == m.Addr {
			return nil, false
		}
		r.known[m.Name] = knownMember{Addr: m.Addr, FailedAt: now}
		return nil, true
	case EventLeave:
		delete(r.known, m.Name)
		return nil, had
	}
	return nil, false
}

// reap forgets the named members, if they are still failed.
func (r *reconnector) reap(names []string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gone []string
	for _, name := range names {
		if k, ok := r.known[name]; ok && !k.FailedAt.IsZero() {
			delete(r.known, name)
			gone = append(gone, name)
		}
	}
	return gone
}

// save writes the known members to the peers file. A failure is logged:
// the file only speeds up finding the cluster after a restart.
func (r *reconnector) save() {
	if r.path == "" {
		return
	}
	r.mu.Lock()
	peers := make([]peerEntry, 0, len(r.known))
	for name, k := range r.known {
		peers = append(peers, peerEntry{Name: name, Addr: k.Addr, FailedAt: k.FailedAt})
	}
	r.mu.Unlock()
	if err := savePeers(r.path, peers); err != nil {
		r.n.log.Warn("gossip: cannot save the members' addresses; a restart may not find the cluster without --join", "err", err)
	}
}

// ReconnectStats returns the reconnect loop's counters.
func (n *Node) ReconnectStats() ReconnectStats {
	r := n.reconn
	return ReconnectStats{
		Attempts:  r.attempts.Load(),
		Successes: r.successes.Load(),
		Reaped:    r.reaped.Load(),
		Merges:    r.merges.Load(),
	}
}

// KnownAddrs returns the last known gossip addresses of the members this
// node knows of, alive or failed but not left nor reaped, itself excluded,
// sorted by member name. Right after New they are those of the peers file
// (Config.PeersFile): the members of the cluster when this node stopped.
func (n *Node) KnownAddrs() []string { return n.reconn.knownAddrs() }

// startReconnect starts the reconnect loop; Shutdown stops it.
func (n *Node) startReconnect(events <-chan MemberEvent, cancel func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer cancel()
		n.reconnectLoop(events)
	}()
}

// reconnectLoop owns the reconnect state: it applies membership events,
// saves the peers file when it changes, and runs a reconnect round every
// ReconnectInterval. Its first round, right away, tries every member of
// the peers file at once if this node is alone.
func (n *Node) reconnectLoop(events <-chan MemberEvent) {
	r := n.reconn
	if c := r.candidates(); len(c) > 0 && n.view.numAlive() <= 1 {
		addrs := make([]string, len(c))
		for i, m := range c {
			addrs[i] = m.Addr
		}
		slices.Sort(addrs)
		n.tryJoin(addrs)
	}
	t := time.NewTicker(n.cfg.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-n.quit:
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			n.applyEvents(e, events)
		case <-t.C:
			n.reconnectRound()
		}
	}
}

// applyEvents applies e and every event already queued behind it, then
// saves the peers file once and logs, in one line, the failed members that
// came back: a healed partition shows as such a burst.
func (n *Node) applyEvents(e MemberEvent, events <-chan MemberEvent) {
	r := n.reconn
	now := n.cfg.Now()
	var back []string
	var longest time.Duration
	dirty := false
	for {
		b, changed := r.apply(e, now)
		dirty = dirty || changed
		if b != nil {
			back = append(back, b.Name)
			longest = max(longest, now.Sub(b.FailedAt))
		}
		select {
		case e2, ok := <-events:
			if ok {
				e = e2
				continue
			}
		default:
		}
		break
	}
	if dirty {
		r.save()
	}
	if len(back) > 0 {
		r.merges.Add(1)
		slices.Sort(back)
		n.log.Info("gossip: merged with members this node had marked failed",
			"members", strings.Join(back, ","), "failed_for", longest.Round(time.Second).String(), "alive", n.view.numAlive())
	}
}

// reconnectRound plans one round and applies the plan.
func (n *Node) reconnectRound() {
	if n.checkUsable() != nil {
		return
	}
	r := n.reconn
	n.randMu.Lock()
	plan := PlanReconnect(n.cfg.Now(), r.candidates(), n.view.numAlive(), n.cfg.ReconnectTimeout, n.rand)
	n.randMu.Unlock()
	if len(plan.Reap) > 0 {
		gone := r.reap(plan.Reap)
		for _, name := range gone {
			n.view.forget(name)
			n.log.Info("gossip: gave up reconnecting to a failed member", "member", name, "after", n.cfg.ReconnectTimeout.String())
		}
		r.save()
		r.reaped.Add(int64(len(gone)))
	}
	if plan.Try.Name != "" {
		n.log.Debug("gossip: trying to reconnect to a failed member", "member", plan.Try.Name, "addr", plan.Try.Addr)
		if n.tryJoin([]string{plan.Try.Addr}) {
			n.log.Info("gossip: reconnected to a failed member", "member", plan.Try.Name, "addr", plan.Try.Addr)
		}
	}
}

// tryJoin makes one join attempt (memberlist push/pull) to addrs, counts
// it, and reports whether any answered. It may block up to TCPTimeout per
// unreachable address.
func (n *Node) tryJoin(addrs []string) bool {
	r := n.reconn
	r.attempts.Add(1)
	contacted, err := n.ml.Join(addrs)
	if contacted == 0 {
		n.log.Debug("gossip: reconnect attempt failed", "addrs", strings.Join(addrs, ","), "err", err)
		return false
	}
	r.successes.Add(1)
	return true
}

// forget removes a member from the view if it is still dead, as Serf
// reaps a member it gave up on: it is no longer listed.
func (v *view) forget(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.members[name]; ok && e.State == StateDead {
		delete(v.members, name)
	}
}
