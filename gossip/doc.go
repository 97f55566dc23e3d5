// Package gossip is Shoal's membership and small-metadata layer, a wrapper
// around hashicorp/memberlist (the only package of Shoal that imports it).
//
// A [Node] joins a cluster over SWIM gossip, keeps a view of every member it
// has seen (alive, suspect, dead or left), publishes membership events, and
// carries a replicated key/value [Store]: every node holds the whole record
// set, writes are ordered by a hybrid logical clock ([Version]) and resolved
// last-writer-wins, deletions are tombstones that expire after a TTL. Records
// spread by memberlist broadcasts, converge by push/pull and are persisted in
// bbolt, so a whole-cluster restart loses nothing.
//
// The package is a leaf: it imports nothing of Shoal's.
package gossip
