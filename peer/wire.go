package peer

import (
	"fmt"

	"shoal.dev/shoal/p2p"
)

// WireVersion is the generation of Shoal's wire formats as a whole: the
// libp2p protocols (/shoal/block/1, /shoal/create/1, /shoal/meta/1,
// /shoal/meta/2, /shoal/shuffle/1, /shoal/tasklog/1, /shoal/nodestats/1,
// /shoal/ping/1), the gossiped records and
// the node meta. Each node gossips it in its meta. A release that changes a
// format raises it and keeps speaking the previous generation, so that
// releases N and N−1 interoperate during a rolling upgrade; members further
// apart are left out of each other's ring, logged once and shown in
// `shoal members`, instead of failing on bytes.
//
// Generation 2 adds the direct data plane: the node meta's Direct
// addresses, where the same protocols run over TLS 1.3 without the
// private network. Generation 1 nodes ignore the field and are reached
// over the private network, which generation 2 still serves.
const WireVersion = 2

// wireOf is the generation a member announces; releases before the field
// existed spoke generation 1.
func wireOf(m nodeMeta) int {
	if m.Wire == 0 {
		return 1
	}
	return m.Wire
}

// wireCompatible decides whether two generations interoperate: equal or
// one apart (the newer speaks the older's formats too).
func wireCompatible(ours, theirs int) bool {
	d := ours - theirs
	return d >= -1 && d <= 1
}

// wireMismatch says why a member of generation theirs is left out.
func wireMismatch(ours, theirs int) string {
	return fmt.Sprintf("incompatible: speaks wire format %d, this node %d; releases more than one apart do not interoperate: upgrade one release at a time", theirs, ours)
}

// unspoken is the error of a stream to member node refused because node
// does not serve protocol: a release whose formats this node's cannot meet,
// though its generation said they would. The first time for each member
// and protocol, the node says so in one log line.
func (n *Node) unspoken(node, protocol string) error {
	release, wire := "unknown", 0
	n.mu.Lock()
	if meta, ok := n.byName[node]; ok {
		release, wire = meta.Version, wireOf(meta)
	}
	if n.unspokenLogged == nil {
		n.unspokenLogged = map[[2]string]bool{}
	}
	first := !n.unspokenLogged[[2]string{node, protocol}]
	n.unspokenLogged[[2]string{node, protocol}] = true
	n.mu.Unlock()
	if first {
		n.log.Warn("member does not speak a protocol this node uses: this node cannot speak to it over it",
			"member", node, "protocol", protocol, "member_release", release, "member_wire", wire, "release", Version, "wire", WireVersion)
	}
	return fmt.Errorf("%s (release %s, wire format %d) does not speak %s, which this node (release %s, wire format %d) uses: upgrade one release at a time: %w",
		node, release, wire, protocol, Version, WireVersion, p2p.ErrUnsupportedProtocol)
}
