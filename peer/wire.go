package peer

import "fmt"

// WireVersion is the generation of Shoal's wire formats as a whole: the
// libp2p protocols (/shoal/block/1, /shoal/create/1, /shoal/meta/1,
// /shoal/meta/2, /shoal/shuffle/1, /shoal/ping/1), the gossiped records and
// the node meta. Each node gossips it in its meta. A release that changes a
// format raises it and keeps speaking the previous generation, so that
// releases N and N−1 interoperate during a rolling upgrade; members further
// apart are left out of each other's ring, logged once and shown in
// `shoal members`, instead of failing on bytes.
const WireVersion = 1

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
