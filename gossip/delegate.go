package gossip

import (
	"log/slog"
	"strings"
	"sync"

	"github.com/hashicorp/memberlist"
)

// maxBroadcastBytes is the largest record message that fits a gossip
// packet: memberlist's UDPBufferSize (1400) less the compound header (2),
// the worst-case encryption overhead (45), the per-message compound
// overhead (2) and the user-message type byte (1). A bigger one would sit
// in the broadcast queue forever, so it is sent reliably instead.
const maxBroadcastBytes = 1400 - 2 - 45 - 2 - 1

// delegate implements memberlist.Delegate: it carries the record store's
// changes in broadcasts, merges what others send, exchanges the whole store
// in push/pull, and serves the node's metadata.
//
// memberlist calls its methods concurrently, from its packet handler (which
// must never block: NotifyMsg, GetBroadcasts), its stream handlers
// (NotifyMsg for reliable messages, LocalState, MergeRemoteState) and its
// timers, and may keep calling them for a moment after Shutdown returns.
// Byte slices memberlist passes in are only valid during the call.
type delegate struct {
	log   *slog.Logger
	store *Store // set once, before memberlist starts
	view  *view
	queue *memberlist.TransmitLimitedQueue
	// large queues local records too big to broadcast for the Node's
	// reliable sender.
	large *pump[Record]
	// push queues the messages of local records under pushPrefixes for
	// the Node's immediate sender.
	push         *pump[[]byte]
	pushPrefixes []string

	mu   sync.Mutex
	meta []byte
}

// recordBroadcast is one queued message about a key (or, for leave
// notices, a node). Queuing another with the same name replaces it, so a
// newer version of a record evicts the older one still being retransmitted.
type recordBroadcast struct {
	name string
	msg  []byte
}

// Name implements memberlist.NamedBroadcast.
func (b *recordBroadcast) Name() string { return b.name }

// Invalidates implements memberlist.Broadcast; memberlist uses Name instead
// for named broadcasts, this is for completeness.
func (b *recordBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*recordBroadcast)
	return ok && ob.name == b.name
}

// Message implements memberlist.Broadcast.
func (b *recordBroadcast) Message() []byte { return b.msg }

// Finished implements memberlist.Broadcast.
func (b *recordBroadcast) Finished() {}

// onApply is the Store's OnApply hook: it runs with the Store's lock held,
// in apply order, so broadcasts are queued in version order. Local changes
// are broadcast (or, too big, handed to the reliable sender); changes
// received in a message are re-broadcast so they spread epidemically (a
// record already known is not applied, which ends the spread); push/pull
// changes are not, since every member runs push/pull itself.
func (d *delegate) onApply(r Record, src source) {
	if src == fromPushPull {
		return
	}
	msg, err := encodeMessage(&message{Kind: kindRecords, Records: []Record{r}})
	if err != nil {
		d.log.Error("gossip: cannot broadcast record", "key", r.Key, "err", err)
		return
	}
	if len(msg) <= maxBroadcastBytes {
		d.queue.QueueBroadcast(&recordBroadcast{name: "r/" + r.Key, msg: msg})
		if src == fromLocal && d.pushed(r.Key) {
			d.push.push(msg)
		}
		return
	}
	if src == fromLocal {
		d.large.push(r)
	}
}

// pushed reports whether key is under one of the push prefixes.
func (d *delegate) pushed(key string) bool {
	for _, p := range d.pushPrefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// NodeMeta implements memberlist.Delegate.
func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.meta) > limit {
		d.log.Error("gossip: node meta exceeds memberlist's limit; sending none", "bytes", len(d.meta), "limit", limit)
		return nil
	}
	return d.meta
}

// setMeta replaces the node's metadata; meta must not be modified later.
func (d *delegate) setMeta(meta []byte) {
	d.mu.Lock()
	d.meta = meta
	d.mu.Unlock()
}

// NotifyMsg implements memberlist.Delegate: it merges records from a
// broadcast or reliable message and records leave notices. Malformed
// messages are logged and dropped.
func (d *delegate) NotifyMsg(b []byte) {
	m, err := decodeMessage(b)
	if err != nil {
		d.log.Warn("gossip: dropping malformed message", "bytes", len(b), "err", err)
		return
	}
	switch m.Kind {
	case kindRecords:
		d.store.merge(m.Records, fromMessage)
	case kindLeave:
		d.view.noteLeaving(m.Node)
	default:
		d.log.Warn("gossip: dropping unexpected message", "kind", m.Kind)
	}
}

// GetBroadcasts implements memberlist.Delegate.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState implements memberlist.Delegate: nothing. Records do not ride
// on memberlist's push/pull, whose cost grows with the store and which
// memberlist caps (20 MB): anti-entropy by digest (Node.SyncWith) converges
// them instead.
func (d *delegate) LocalState(join bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate: it ignores what an older
// peer may still send.
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}
