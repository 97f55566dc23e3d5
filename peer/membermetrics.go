package peer

import (
	"fmt"
	"io"

	"shoal.dev/shoal/gossip"
)

// writeMemberMetrics writes the membership gauges, one series per state,
// and the reconnect loop's counters, in the Prometheus text format.
func (n *Node) writeMemberMetrics(w io.Writer) {
	counts := map[gossip.State]int{}
	for _, m := range n.gossip.Members() {
		counts[m.State]++
	}
	fmt.Fprintf(w, "# HELP shoal_members Members in this node's view, by state.\n# TYPE shoal_members gauge\n")
	for _, s := range []gossip.State{gossip.StateAlive, gossip.StateSuspect, gossip.StateDead, gossip.StateLeft} {
		fmt.Fprintf(w, "shoal_members{state=%q} %d\n", s.String(), counts[s])
	}
	st := n.gossip.ReconnectStats()
	for _, m := range []struct {
		name, help string
		value      int64
	}{
		{"shoal_reconnect_attempts_total", "Joins tried to members that had failed.", st.Attempts},
		{"shoal_reconnect_successes_total", "Of those joins, the ones a member answered.", st.Successes},
		{"shoal_reconnect_reaped_total", "Failed members given up on after the reconnect timeout.", st.Reaped},
		{"shoal_members_merged_total", "Times members this node had marked failed came back alive (a healed partition, a restart).", st.Merges},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", m.name, m.help, m.name, m.name, m.value)
	}
}
