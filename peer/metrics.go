package peer

import (
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"shoal.dev/shoal/gossip"
	"shoal.dev/shoal/scheduler"
)

// metrics is a node's Prometheus registry: one per node, so many nodes
// run in one process. Events (an HTTP request, a task attempt, a job's
// end) update its counters and histograms as they happen; everything else
// is read at scrape time from counters the packages keep as things change
// (nodeCollector), so a scrape costs the same at a million blocks as at
// ten: no directory or record walk.
type metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec   // route, code
	httpDuration *prometheus.HistogramVec // route
	attempts     *prometheus.CounterVec   // kind, result
	taskDuration *prometheus.HistogramVec // kind
	jobsEnded    *prometheus.CounterVec   // state
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_http_requests_total",
			Help: "HTTP API requests answered, by route (the pattern matched; \"none\" for requests refused before routing) and status code.",
		}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_http_request_duration_seconds",
			Help:    "Time to answer HTTP API requests, by route; streams count until their last byte.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_task_attempts_total",
			Help: "Task attempts that ended on this node, by kind (map, reduce) and result (succeeded, failed, killed).",
		}, []string{"kind", "result"}),
		taskDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_task_duration_seconds",
			Help:    "Duration of the task attempts that ended on this node, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10), // 10 ms to 44 min
		}, []string{"kind"}),
		jobsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_jobs_ended_total",
			Help: "Jobs that ended since this node started, by final state; every node counts every job it learns has ended, so take max() over the nodes, not sum().",
		}, []string{"state"}),
	}
	for _, s := range []string{scheduler.StateSucceeded, scheduler.StateFailed, scheduler.StateKilled} {
		m.jobsEnded.WithLabelValues(s)
	}
	for _, k := range []string{"map", "reduce"} {
		for _, r := range []string{"succeeded", "failed", "killed"} {
			m.attempts.WithLabelValues(k, r)
		}
		m.taskDuration.WithLabelValues(k)
	}
	m.reg.MustRegister(m.httpRequests, m.httpDuration, m.attempts, m.taskDuration, m.jobsEnded,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newNodeCollector(n))
	return m
}

// attemptEnded is the scheduler's OnAttempt.
func (m *metrics) attemptEnded(a scheduler.Attempt) {
	m.attempts.WithLabelValues(a.Kind, a.Result).Inc()
	m.taskDuration.WithLabelValues(a.Kind).Observe(a.Duration.Seconds())
}

// jobEnded is the scheduler's OnJobEnd.
func (m *metrics) jobEnded(state string) { m.jobsEnded.WithLabelValues(state).Inc() }

// instrument counts every request and its latency by the route the mux
// matched (http.Request.Pattern, set in place by the ServeMux) and status.
func (m *metrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "none"
		}
		m.httpRequests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		m.httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// statusWriter remembers the status code written; it unwraps for
// http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(p)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// handleMetrics serves the registry in the Prometheus text format. Like
// /v1/health it needs no token: it reveals counts, not data.
func (n *Node) handleMetrics(w http.ResponseWriter, r *http.Request) {
	promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
}

// nodeCollector reads, at scrape time, the counters the block store,
// repair loop, writers, shuffle server, scheduler and gossip keep.
type nodeCollector struct {
	n     *Node
	descs map[string]nodeDesc
}

type nodeDesc struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
}

type nodeMetric struct {
	name, help string
	kind       prometheus.ValueType
	labels     []string
}

var nodeMetrics = []nodeMetric{
	{"shoal_build_info", "The running build: version and Go version; always 1.", prometheus.GaugeValue, []string{"version", "goversion"}},
	{"shoal_members", "Members in this node's view, by state.", prometheus.GaugeValue, []string{"state"}},
	{"shoal_members_alive", "Alive members in this node's view (the ring).", prometheus.GaugeValue, nil},
	{"shoal_reconnect_attempts_total", "Joins tried to members that had failed.", prometheus.CounterValue, nil},
	{"shoal_reconnect_successes_total", "Of those joins, the ones a member answered.", prometheus.CounterValue, nil},
	{"shoal_reconnect_reaped_total", "Failed members given up on after the reconnect timeout.", prometheus.CounterValue, nil},
	{"shoal_members_merged_total", "Times members this node had marked failed came back alive (a healed partition, a restart).", prometheus.CounterValue, nil},
	{"shoal_p2p_streams_private_total", "Data-plane streams this node opened over the private network (Noise inside the secret's XSalsa20).", prometheus.CounterValue, nil},
	{"shoal_p2p_streams_direct_total", "Data-plane streams this node opened over the direct plane (TLS 1.3, members only).", prometheus.CounterValue, nil},
	{"shoal_blocks_stored", "Blocks in the local store.", prometheus.GaugeValue, nil},
	{"shoal_blocks_stored_bytes", "Bytes of the blocks in the local store.", prometheus.GaugeValue, nil},
	{"shoal_blocks_written_total", "Blocks written to the local store.", prometheus.CounterValue, nil},
	{"shoal_blocks_deleted_total", "Blocks deleted from the local store.", prometheus.CounterValue, nil},
	{"shoal_blocks_corrupt_total", "Corrupt local block copies found and quarantined.", prometheus.CounterValue, nil},
	{"shoal_blocks_received_by_sums_total", "Blocks received from a member and checked against the CRC32C chunk sums it sent with them, not hashed with SHA-256.", prometheus.CounterValue, nil},
	{"shoal_block_read_bytes_total", "Block bytes read from the local store.", prometheus.CounterValue, nil},
	{"shoal_blocks_scrubbed_bytes_total", "Bytes of local blocks the background scrub verified against their IDs (--scrub-rate).", prometheus.CounterValue, nil},
	{"shoal_blocks_scrub_failures_total", "Local blocks the background scrub could not read (an I/O error); each is tried again next round.", prometheus.CounterValue, nil},
	{"shoal_block_writes_total", "Blocks this node's writers stored (fs put, job output, manifests).", prometheus.CounterValue, nil},
	{"shoal_block_writes_substituted_total", "Block writes where a target failed and the next member on the ring took its copy.", prometheus.CounterValue, nil},
	{"shoal_block_writes_under_replicated_total", "Blocks written with fewer copies than their replication (no candidate left); repair completes them.", prometheus.CounterValue, nil},
	{"shoal_block_writes_failed_total", "Block writes that no member could store (the put failed).", prometheus.CounterValue, nil},
	{"shoal_repair_passes_total", "Repair passes run.", prometheus.CounterValue, nil},
	{"shoal_repair_fetched_total", "Owned blocks fetched from other replicas.", prometheus.CounterValue, nil},
	{"shoal_repair_dropped_total", "Copies dropped once every owner had them.", prometheus.CounterValue, nil},
	{"shoal_repair_collected_total", "Unreferenced blocks collected.", prometheus.CounterValue, nil},
	{"shoal_repair_failed_total", "Repair fetches that failed.", prometheus.CounterValue, nil},
	{"shoal_repair_missing_blocks", "Blocks no alive member could serve at the last repair pass.", prometheus.GaugeValue, nil},
	{"shoal_blocks_under_replicated", "Blocks this node owns but lacked at the start of the last repair pass.", prometheus.GaugeValue, nil},
	{"shoal_disk_free_bytes", "Bytes free to this agent on the data dir's most constrained file system (the data dir, or its blocks, shuffle or work dir when mounted apart).", prometheus.GaugeValue, nil},
	{"shoal_disk_size_bytes", "Size of that file system.", prometheus.GaugeValue, nil},
	{"shoal_disk_reserve_bytes", "The --reserve on that file system, in bytes.", prometheus.GaugeValue, nil},
	{"shoal_disk_low", "1 while the node is low on disk (below its reserve, or a write was refused or met ENOSPC): it takes no new blocks or tasks.", prometheus.GaugeValue, nil},
	{"shoal_disk_refused_total", "Writes refused at the door because they would have crossed the reserve.", prometheus.CounterValue, nil},
	{"shoal_disk_full_total", "Writes that met ENOSPC or EDQUOT (the disk itself was full).", prometheus.CounterValue, nil},
	{"shoal_shuffle_served_bytes_total", "Map output bytes this node served to reducers on other nodes.", prometheus.CounterValue, nil},
	{"shoal_shuffle_fetched_bytes_total", "Map output bytes reducers on this node fetched from other nodes.", prometheus.CounterValue, nil},
	{"shoal_shuffle_held_bytes_total", "Of the fetched map output bytes, those reducers on this node held in memory instead of spooling them to disk.", prometheus.CounterValue, nil},
	{"shoal_spill_bytes_total", "Bytes map tasks on this node wrote to spill and output files.", prometheus.CounterValue, nil},
	{"shoal_jobs_running", "Jobs without a final state at the scheduler's last pass.", prometheus.GaugeValue, nil},
	{"shoal_program_waits_total", "Task attempts on this node that found their shipped program not stored in the cluster and waited for a node to store it again.", prometheus.CounterValue, nil},
	{"shoal_meta_rejected_ahead_total", "Remote metadata records rejected: written by a clock more than --max-clock-drift ahead.", prometheus.CounterValue, nil},
	{"shoal_meta_disk_commits_total", "Metadata database transactions committed, each with an fsync: one per local write or delete, one per batch of remote changes.", prometheus.CounterValue, nil},
	{"shoal_meta_records", "Metadata records held, tombstones included.", prometheus.GaugeValue, nil},
	{"shoal_meta_synced", "1 once the metadata has completed an anti-entropy round with every alive member since start (block collection waits for it).", prometheus.GaugeValue, nil},
	{"shoal_meta_recovering", "1 while the node re-syncs reset or stale metadata (the API answers 503).", prometheus.GaugeValue, nil},
	{"shoal_antientropy_rounds_total", "Anti-entropy rounds completed, initiated or served.", prometheus.CounterValue, nil},
	{"shoal_antientropy_failed_total", "Anti-entropy rounds that failed.", prometheus.CounterValue, nil},
	{"shoal_antientropy_bytes_total", "Bytes this node sent and received in anti-entropy rounds.", prometheus.CounterValue, nil},
	{"shoal_meta_tombstone_refused_total", "Records of a stale member refused by the tombstone rule.", prometheus.CounterValue, nil},
	{"shoal_meta_tombstone_purged_total", "Own records dropped by the tombstone rule after a long absence.", prometheus.CounterValue, nil},
}

func newNodeCollector(n *Node) *nodeCollector {
	c := &nodeCollector{n: n, descs: map[string]nodeDesc{}}
	for _, m := range nodeMetrics {
		c.descs[m.name] = nodeDesc{prometheus.NewDesc(m.name, m.help, m.labels, nil), m.kind}
	}
	return c
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d.desc
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	emit := func(name string, v int64, labels ...string) {
		d := c.descs[name]
		ch <- prometheus.MustNewConstMetric(d.desc, d.kind, float64(v), labels...)
	}
	emit("shoal_build_info", 1, Version, runtime.Version())

	counts := map[gossip.State]int64{}
	for _, m := range n.gossip.Members() {
		counts[m.State]++
	}
	for _, s := range []gossip.State{gossip.StateAlive, gossip.StateSuspect, gossip.StateDead, gossip.StateLeft} {
		emit("shoal_members", counts[s], s.String())
	}
	emit("shoal_members_alive", int64(n.Ring().Len()))
	rc := n.gossip.ReconnectStats()
	emit("shoal_reconnect_attempts_total", rc.Attempts)
	emit("shoal_reconnect_successes_total", rc.Successes)
	emit("shoal_reconnect_reaped_total", rc.Reaped)
	emit("shoal_members_merged_total", rc.Merges)

	private, direct := n.host.StreamsOpened()
	emit("shoal_p2p_streams_private_total", private)
	emit("shoal_p2p_streams_direct_total", direct)

	st, rp, wr := n.blocks, &n.repairer.Stats, &n.fs.Writes
	held, heldBytes := st.Held()
	emit("shoal_blocks_stored", held)
	emit("shoal_blocks_stored_bytes", heldBytes)
	emit("shoal_blocks_written_total", st.Written.Load())
	emit("shoal_blocks_deleted_total", st.Deleted.Load())
	emit("shoal_blocks_corrupt_total", st.Corrupt.Load())
	emit("shoal_blocks_received_by_sums_total", st.Summed.Load())
	emit("shoal_block_read_bytes_total", st.ReadByte.Load())
	var scrubbed, scrubFailed int64
	if n.scrubber != nil {
		scrubbed = n.scrubber.Stats.Bytes.Load()
		scrubFailed = n.scrubber.Stats.Failed.Load()
	}
	emit("shoal_blocks_scrubbed_bytes_total", scrubbed)
	emit("shoal_blocks_scrub_failures_total", scrubFailed)
	emit("shoal_block_writes_total", wr.Blocks.Load())
	emit("shoal_block_writes_substituted_total", wr.Substituted.Load())
	emit("shoal_block_writes_under_replicated_total", wr.Under.Load())
	emit("shoal_block_writes_failed_total", wr.Failed.Load())
	emit("shoal_repair_passes_total", rp.Passes.Load())
	emit("shoal_repair_fetched_total", rp.Fetched.Load())
	emit("shoal_repair_dropped_total", rp.Dropped.Load())
	emit("shoal_repair_collected_total", rp.Collected.Load())
	emit("shoal_repair_failed_total", rp.Failed.Load())
	emit("shoal_repair_missing_blocks", rp.Missing.Load())
	emit("shoal_blocks_under_replicated", rp.UnderReplicated.Load())
	ds := n.measureDisk() // statfs only: a scrape walks no directory
	if ds.Path != "" {
		emit("shoal_disk_free_bytes", ds.Free)
		emit("shoal_disk_size_bytes", ds.Total)
		emit("shoal_disk_reserve_bytes", ds.Reserve)
	}
	emit("shoal_disk_low", boolInt(ds.Low))
	emit("shoal_disk_refused_total", n.space.Refused.Load())
	emit("shoal_disk_full_total", n.space.NoSpace.Load())

	emit("shoal_shuffle_served_bytes_total", n.shuffleSrv.BytesServed.Load())
	ss := &n.sched.Stats
	emit("shoal_shuffle_fetched_bytes_total", ss.ShuffleFetchedBytes.Load())
	emit("shoal_shuffle_held_bytes_total", ss.ShuffleHeldBytes.Load())
	emit("shoal_spill_bytes_total", ss.SpilledBytes.Load())
	emit("shoal_jobs_running", ss.RunningJobs.Load())
	emit("shoal_program_waits_total", ss.ProgramWaits.Load())

	meta := n.gossip.Records().Stats()
	ae := n.gossip.SyncStats()
	emit("shoal_meta_rejected_ahead_total", meta.RejectedAhead)
	emit("shoal_meta_disk_commits_total", meta.DiskCommits)
	emit("shoal_meta_records", int64(n.gossip.Records().Len()))
	emit("shoal_meta_synced", boolInt(n.gossip.Synced()))
	emit("shoal_meta_recovering", boolInt(n.recovering.Load()))
	emit("shoal_antientropy_rounds_total", ae.Rounds)
	emit("shoal_antientropy_failed_total", ae.Failed)
	emit("shoal_antientropy_bytes_total", ae.Bytes)
	emit("shoal_meta_tombstone_refused_total", ae.Refused)
	emit("shoal_meta_tombstone_purged_total", ae.Purged)
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
