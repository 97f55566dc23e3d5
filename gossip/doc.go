// Package gossip is Shoal's membership and small-metadata layer, a wrapper
// around hashicorp/memberlist (the only package of Shoal that imports it).
//
// A [Node] joins a cluster over SWIM gossip, keeps a view of every member it
// has seen (alive, suspect, dead or left), publishes membership events, and
// carries a replicated key/value [Store]: every node holds the whole record
// set, writes are ordered by a hybrid logical clock ([Version]) and resolved
// last-writer-wins, deletions are tombstones that expire after a TTL. Records
// spread by memberlist broadcasts, converge by anti-entropy rounds that
// compare a digest of hash buckets and move only the differing buckets'
// records (over a stream the caller provides: [Config.SyncDial],
// [Node.ServeSync]; memberlist's push/pull carries no records), and are
// persisted in bbolt, so a whole-cluster restart loses nothing. Remote
// records from a clock too far ahead are refused ([Config.MaxClockDrift]); a
// node away longer than the tombstone TTL re-syncs under the tombstone rule
// (see antientropy.go) instead of bringing deleted records back.
//
// The package is a leaf: it imports nothing of Shoal's.
package gossip
