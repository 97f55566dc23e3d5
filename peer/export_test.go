package peer

import (
	"strings"
	"time"
)

// MemberFailuresSince counts the members this node declared dead since t,
// as its console lists them: a node of an in-process cluster on a loaded
// machine can miss its probes for a moment, and then its tasks rightly run
// elsewhere too.
func (n *Node) MemberFailuresSince(t time.Time) int {
	c := 0
	for _, e := range n.console.recentEvents() {
		if !e.At.Before(t) && strings.HasPrefix(e.What, "fail ") {
			c++
		}
	}
	return c
}

// MetaProtocol is the protocol on which a member answers another's pull of
// records (syncRecords).
const MetaProtocol = metaProtocol
