package gossip

import (
	"cmp"
	"fmt"
	"time"
)

// logicalBits is the width of the logical counter in an HLC timestamp.
const logicalBits = 16

// Version orders the writes of a record across the cluster. Higher wins.
type Version struct {
	// HLC is a hybrid logical clock timestamp: Unix milliseconds of the
	// writer's clock shifted left by 16 bits, plus a logical counter that
	// orders writes within a millisecond and writes caused by a remote
	// timestamp ahead of the local clock.
	HLC uint64 `msgpack:"h"`
	// Node is the name of the node that made the write; it breaks HLC ties.
	Node string `msgpack:"n"`
}

// Compare returns -1 if v is older than o, +1 if v is newer and 0 if they
// are the same version.
func (v Version) Compare(o Version) int {
	if c := cmp.Compare(v.HLC, o.HLC); c != 0 {
		return c
	}
	return cmp.Compare(v.Node, o.Node)
}

// Time returns the physical part of the HLC timestamp.
func (v Version) Time() time.Time {
	return time.UnixMilli(int64(v.HLC >> logicalBits))
}

// String formats the version as "ms.counter@node".
func (v Version) String() string {
	return fmt.Sprintf("%d.%d@%s", v.HLC>>logicalBits, v.HLC&(1<<logicalBits-1), v.Node)
}

// hlc is a hybrid logical clock (Kulkarni et al., 2014) packed in a uint64.
// It is not safe for concurrent use; the Store guards it with its lock.
type hlc struct {
	now  func() time.Time
	last uint64 // the highest timestamp issued or received
}

// physical returns the wall clock as an HLC timestamp with a zero counter.
func (c *hlc) physical() uint64 {
	ms := c.now().UnixMilli()
	if ms < 0 {
		ms = 0
	}
	return uint64(ms) << logicalBits
}

// tick returns a timestamp for a local event (send rule): greater than every
// timestamp issued or received so far, and at least the wall clock.
func (c *hlc) tick() uint64 {
	c.last = max(c.last+1, c.physical())
	return c.last
}

// observe advances the clock past a remote timestamp (receive rule), so the
// next local write orders after every write this node has seen.
// remote must be below maxHLC (validateRecord checks it), so nothing
// overflows.
func (c *hlc) observe(remote uint64) {
	c.last = max(c.last+1, remote+1, c.physical())
}
