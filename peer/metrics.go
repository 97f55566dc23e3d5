package peer

import (
	"fmt"
	"net/http"
	"runtime"
)

// handleMetrics serves the node's counters in the Prometheus text format.
// Like /v1/health it needs no token: it reveals counts, not data.
func (n *Node) handleMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	st, rp, wr := n.blocks, &n.repairer.Stats, &n.fs.Writes
	meta := n.gossip.Records().Stats()
	ae := n.gossip.SyncStats()
	recovering := int64(0)
	if n.recovering.Load() {
		recovering = 1
	}
	synced := int64(0)
	if n.gossip.Synced() {
		synced = 1
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	local, _ := n.blocks.List()
	var localBytes int64
	for _, b := range local {
		localBytes += b.Size
	}
	metrics := []struct {
		name, kind, help string
		value            int64
	}{
		{"shoal_members_alive", "gauge", "Alive members in this node's view.", int64(n.Ring().Len())},
		{"shoal_blocks_stored", "gauge", "Blocks in the local store.", int64(len(local))},
		{"shoal_blocks_stored_bytes", "gauge", "Bytes of the blocks in the local store.", localBytes},
		{"shoal_blocks_written_total", "counter", "Blocks written to the local store.", st.Written.Load()},
		{"shoal_blocks_deleted_total", "counter", "Blocks deleted from the local store.", st.Deleted.Load()},
		{"shoal_blocks_corrupt_total", "counter", "Corrupt local block copies found and quarantined.", st.Corrupt.Load()},
		{"shoal_block_read_bytes_total", "counter", "Block bytes read from the local store.", st.ReadByte.Load()},
		{"shoal_block_writes_total", "counter", "Blocks this node's writers stored (fs put, job output, manifests).", wr.Blocks.Load()},
		{"shoal_block_writes_substituted_total", "counter", "Block writes where a target failed and the next member on the ring took its copy.", wr.Substituted.Load()},
		{"shoal_block_writes_under_replicated_total", "counter", "Blocks written with fewer copies than their replication (no candidate left); repair completes them.", wr.Under.Load()},
		{"shoal_block_writes_failed_total", "counter", "Block writes that no member could store (the put failed).", wr.Failed.Load()},
		{"shoal_repair_passes_total", "counter", "Repair passes run.", rp.Passes.Load()},
		{"shoal_repair_fetched_total", "counter", "Owned blocks fetched from other replicas.", rp.Fetched.Load()},
		{"shoal_repair_dropped_total", "counter", "Copies dropped once every owner had them.", rp.Dropped.Load()},
		{"shoal_repair_collected_total", "counter", "Unreferenced blocks collected.", rp.Collected.Load()},
		{"shoal_repair_failed_total", "counter", "Repair fetches that failed.", rp.Failed.Load()},
		{"shoal_repair_missing_blocks", "gauge", "Blocks no alive member could serve at the last pass.", rp.Missing.Load()},
		{"shoal_meta_rejected_ahead_total", "counter", "Remote metadata records rejected: written by a clock more than --max-clock-drift ahead.", meta.RejectedAhead},
		{"shoal_meta_records", "gauge", "Metadata records held, tombstones included.", int64(n.gossip.Records().Len())},
		{"shoal_meta_synced", "gauge", "1 once the metadata has completed an anti-entropy round with every alive member since start (block collection waits for it).", synced},
		{"shoal_meta_recovering", "gauge", "1 while the node re-syncs reset or stale metadata (the API answers 503).", recovering},
		{"shoal_antientropy_rounds_total", "counter", "Anti-entropy rounds completed, initiated or served.", ae.Rounds},
		{"shoal_antientropy_failed_total", "counter", "Anti-entropy rounds that failed.", ae.Failed},
		{"shoal_antientropy_bytes_total", "counter", "Bytes this node sent and received in anti-entropy rounds.", ae.Bytes},
		{"shoal_meta_tombstone_refused_total", "counter", "Records of a stale member refused by the tombstone rule.", ae.Refused},
		{"shoal_meta_tombstone_purged_total", "counter", "Own records dropped by the tombstone rule after a long absence.", ae.Purged},
		{"shoal_go_heap_bytes", "gauge", "Go heap in use.", int64(ms.HeapInuse)},
		{"shoal_go_goroutines", "gauge", "Goroutines.", int64(runtime.NumGoroutine())},
	}
	for _, m := range metrics {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", m.name, m.help, m.name, m.kind, m.name, m.value)
	}
	n.writeMemberMetrics(w)
}
