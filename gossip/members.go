package gossip

import (
	"bytes"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"

	"github.com/hashicorp/memberlist"
)

// State is a member's state as this node sees it.
type State int

const (
	// StateAlive is a member that answers probes.
	StateAlive State = iota
	// StateSuspect is a member that missed probes and may yet refute.
	// memberlist v0.7.0 reports no event on suspicion, so this package
	// never assigns it today: a member reads alive until it is declared
	// dead. Code should still treat it like alive (Alive does).
	StateSuspect
	// StateDead is a member that stopped answering without leaving.
	StateDead
	// StateLeft is a member that left gracefully (Node.Leave).
	StateLeft
)

// String returns "alive", "suspect", "dead" or "left".
func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Member is a node of the cluster as this node last saw it.
type Member struct {
	// Name is the member's unique name.
	Name string
	// Addr is the member's gossip address, host:port.
	Addr string
	// State is the member's state.
	State State
	// Meta is the member's metadata (Config.Meta, Node.SetMeta). Do not
	// modify it.
	Meta []byte
}

// EventType is the kind of a MemberEvent.
type EventType int

const (
	// EventJoin: a member appeared, or came back after being dead or left.
	EventJoin EventType = iota
	// EventUpdate: a member's metadata or address changed.
	EventUpdate
	// EventFail: a member stopped answering and was declared dead.
	EventFail
	// EventLeave: a member left gracefully. A member whose leave notice
	// arrives after its departure is first reported EventFail, then
	// EventLeave.
	EventLeave
)

// String returns "join", "update", "fail" or "leave".
func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventUpdate:
		return "update"
	case EventFail:
		return "fail"
	case EventLeave:
		return "leave"
	}
	return "event(" + strconv.Itoa(int(t)) + ")"
}

// MemberEvent is a change in membership; Member is the member's state after
// the change.
type MemberEvent struct {
	Type   EventType
	Member Member
}

// String formats the event as "join node-1 (127.0.0.1:7946, alive)".
func (e MemberEvent) String() string {
	return fmt.Sprintf("%s %s (%s, %s)", e.Type, e.Member.Name, e.Member.Addr, e.Member.State)
}

// memberEntry is the view's record of one member.
type memberEntry struct {
	Member
	node memberlist.Node // name, IP and port, for SendReliable
}

// view is this node's membership table, fed by memberlist's EventDelegate.
// Unlike memberlist.Members it remembers dead and left members. It also
// publishes events to subscribers, whose queues are unbounded so that a
// memberlist callback never waits for a consumer.
type view struct {
	mu      sync.Mutex
	members map[string]*memberEntry
	// leaving holds members that announced a graceful leave and whose
	// departure has not been seen yet (memberlist's events cannot tell a
	// leave from a failure).
	leaving map[string]bool
	subs    map[*pump[MemberEvent]]struct{}
	closed  bool
}

func newView() *view {
	return &view{
		members: make(map[string]*memberEntry),
		leaving: make(map[string]bool),
		subs:    make(map[*pump[MemberEvent]]struct{}),
	}
}

// entryFromNode copies what the view needs out of a memberlist node. It
// must be called inside the callback: memberlist owns n.
func entryFromNode(n *memberlist.Node, s State) *memberEntry {
	addr := net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	return &memberEntry{
		Member: Member{Name: n.Name, Addr: addr, State: s, Meta: bytes.Clone(n.Meta)},
		node:   memberlist.Node{Name: n.Name, Addr: bytes.Clone(n.Addr), Port: n.Port},
	}
}

// NotifyJoin implements memberlist.EventDelegate. memberlist calls the
// three Notify methods one at a time, holding its node lock: they must not
// block nor call back into memberlist, and n must not be kept.
func (v *view) NotifyJoin(n *memberlist.Node) {
	e := entryFromNode(n, StateAlive)
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.leaving, n.Name)
	v.members[n.Name] = e
	v.publishLocked(EventJoin, e.Member)
}

// NotifyUpdate implements memberlist.EventDelegate; see NotifyJoin.
func (v *view) NotifyUpdate(n *memberlist.Node) {
	v.mu.Lock()
	defer v.mu.Unlock()
	state := StateAlive
	if old, ok := v.members[n.Name]; ok {
		state = old.State
	}
	e := entryFromNode(n, state)
	v.members[n.Name] = e
	v.publishLocked(EventUpdate, e.Member)
}

// NotifyLeave implements memberlist.EventDelegate; see NotifyJoin.
// memberlist calls it for failures and graceful leaves alike; the leave
// notices recorded by noteLeaving tell them apart.
func (v *view) NotifyLeave(n *memberlist.Node) {
	v.mu.Lock()
	defer v.mu.Unlock()
	state, typ := StateDead, EventFail
	if v.leaving[n.Name] {
		state, typ = StateLeft, EventLeave
		delete(v.leaving, n.Name)
	}
	e := entryFromNode(n, state)
	v.members[n.Name] = e
	v.publishLocked(typ, e.Member)
}

// noteLeaving records that name announced a graceful leave. If the member
// is already seen dead (the notice lost the race with the departure), it
// is corrected to left.
func (v *view) noteLeaving(name string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.members[name]
	if ok && e.State == StateDead {
		e.State = StateLeft
		v.publishLocked(EventLeave, e.Member)
		return
	}
	if ok && e.State == StateLeft {
		return
	}
	v.leaving[name] = true
}

// publishLocked queues an event for every subscriber. v.mu must be held.
func (v *view) publishLocked(t EventType, m Member) {
	if v.closed {
		return
	}
	for p := range v.subs {
		p.push(MemberEvent{Type: t, Member: m})
	}
}

// list returns the members that keep passes, sorted by name.
func (v *view) list(keep func(State) bool) []Member {
	v.mu.Lock()
	out := make([]Member, 0, len(v.members))
	for _, e := range v.members {
		if keep(e.State) {
			out = append(out, e.Member)
		}
	}
	v.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// alivePeers returns copies of the alive and suspect members other than
// self, for SendReliable.
func (v *view) alivePeers(self string) []*memberlist.Node {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []*memberlist.Node
	for name, e := range v.members {
		if name != self && (e.State == StateAlive || e.State == StateSuspect) {
			n := e.node
			out = append(out, &n)
		}
	}
	return out
}

// numAlive counts the alive and suspect members, self included.
func (v *view) numAlive() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, e := range v.members {
		if e.State == StateAlive || e.State == StateSuspect {
			n++
		}
	}
	return n
}

// subscribe adds a subscriber; see Node.Subscribe.
func (v *view) subscribe() (<-chan MemberEvent, func()) {
	p := newPump[MemberEvent]()
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		p.stop()
		return p.out, func() {}
	}
	v.subs[p] = struct{}{}
	v.mu.Unlock()
	return p.out, func() {
		v.mu.Lock()
		delete(v.subs, p)
		v.mu.Unlock()
		p.stop()
	}
}

// close stops publishing and closes every subscriber's channel.
func (v *view) close() {
	v.mu.Lock()
	v.closed = true
	subs := v.subs
	v.subs = make(map[*pump[MemberEvent]]struct{})
	v.mu.Unlock()
	for p := range subs {
		p.stop()
	}
}
