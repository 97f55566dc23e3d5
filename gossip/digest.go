package gossip

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DigestBuckets is the number of hash buckets a Digest holds. Every key
// falls in one bucket by a hash of the key; each bucket's hash is the XOR of
// a 64-bit hash of (key, version) over the records in it, tombstones
// included, updated on every change. Two stores hold the same records
// exactly when (barring a 64-bit collision) their digests are equal, and
// the buckets that differ name the only keys that need to move.
const DigestBuckets = 4096

// digestBucketBits is log2(DigestBuckets).
const digestBucketBits = 12

// Digest summarises a Store's records for anti-entropy.
type Digest struct {
	// Root is the XOR of every bucket: equal roots mean nothing to do.
	Root uint64
	// Buckets holds DigestBuckets hashes.
	Buckets []uint64
}

// digestState is the incrementally maintained digest; the Store's lock
// guards it.
type digestState struct {
	root    uint64
	buckets [DigestBuckets]uint64
}

// mix64 is splitmix64's finaliser: a bijection that spreads every input bit
// over the output.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// keyHash is FNV-1a of the key; its top bits pick the bucket.
func keyHash(key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return h.Sum64()
}

// BucketOf returns the digest bucket of key.
func BucketOf(key string) int { return int(keyHash(key) >> (64 - digestBucketBits)) }

// itemHash is the digest contribution of one record: a hash of its key and
// version (the value is determined by the version: a writer never issues
// one version twice).
func itemHash(r *Record) (bucket int, h uint64) {
	kh := keyHash(r.Key)
	nh := fnv.New64a()
	_, _ = nh.Write([]byte(r.Version.Node))
	h = mix64(kh ^ mix64(r.Version.HLC^mix64(nh.Sum64())))
	return int(kh >> (64 - digestBucketBits)), h
}

// toggle adds r to the digest, or removes it if it was in.
func (d *digestState) toggle(r *Record) {
	b, h := itemHash(r)
	d.buckets[b] ^= h
	d.root ^= h
}

// setLocked stores r under its key, keeping the digest in step. s.mu held.
func (s *Store) setLocked(r Record) {
	if old, ok := s.recs[r.Key]; ok {
		s.digest.toggle(&old)
	} else {
		s.keys.ReplaceOrInsert(r.Key)
	}
	s.recs[r.Key] = r
	s.digest.toggle(&r)
}

// removeLocked drops key, keeping the digest and the key index in step.
// s.mu held.
func (s *Store) removeLocked(key string) {
	if old, ok := s.recs[key]; ok {
		s.digest.toggle(&old)
		delete(s.recs, key)
		s.keys.Delete(key)
	}
}

// eachLocked calls fn for every record (tombstones included) whose key
// starts with prefix, in key order, until fn returns false. Its cost is
// the records it visits, not the records held. s.mu held.
func (s *Store) eachLocked(prefix string, fn func(r Record) bool) {
	s.keys.AscendGreaterOrEqual(prefix, func(k string) bool {
		if !strings.HasPrefix(k, prefix) {
			return false
		}
		return fn(s.recs[k])
	})
}

// Root returns the digest's root hash: a cheap first comparison.
func (s *Store) Root() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.digest.root
}

// Digest returns a copy of the store's digest. Its cost does not depend on
// the number of records.
func (s *Store) Digest() Digest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Digest{Root: s.digest.root, Buckets: append([]uint64(nil), s.digest.buckets[:]...)}
}

// DiffBuckets returns the buckets in which remote (another store's
// Digest().Buckets) differs from this store's digest, in increasing order.
// A remote of the wrong length differs everywhere.
func (s *Store) DiffBuckets(remote []uint64) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for i := range DigestBuckets {
		if len(remote) != DigestBuckets || remote[i] != s.digest.buckets[i] {
			out = append(out, i)
		}
	}
	return out
}

// BucketRecords returns every record held in the given buckets, tombstones
// included (expired ones too, until they are collected: the digest counts
// them). The values are shared with the Store and must not be modified.
// Its cost is one pass over the records.
func (s *Store) BucketRecords(buckets []int) []Record {
	var want [DigestBuckets]bool
	for _, b := range buckets {
		if b >= 0 && b < DigestBuckets {
			want[b] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for k, r := range s.recs {
		if want[BucketOf(k)] {
			out = append(out, r)
		}
	}
	return out
}

// MergeFromStale merges records sent by a node whose metadata is stale (it
// was away longer than the tombstone TTL): a record whose key this store
// does not hold at all and whose version is older than cutoff is refused,
// because this store may have collected its tombstone; every other record
// merges as Merge does. It returns how many records were applied and how
// many refused.
func (s *Store) MergeFromStale(recs []Record, cutoff time.Time) (applied, refused int, err error) {
	keep := recs[:0:0]
	s.mu.Lock()
	for _, r := range recs {
		if _, known := s.recs[r.Key]; !known && r.Version.Time().Before(cutoff) {
			refused++
			continue
		}
		keep = append(keep, r)
	}
	s.mu.Unlock()
	applied, err = s.Merge(keep)
	return applied, refused, err
}

// PurgeAbsent is the stale side's half of the tombstone rule: after a node
// whose metadata is fresher has sent every record it holds in buckets
// (present names their keys), this store drops, without a tombstone, each
// of its own records in those buckets that the other lacks and whose
// version is older than cutoff. Such a record was deleted while this node
// was away and its tombstone already collected; keeping it would bring it
// back. It returns how many records it dropped. Watchers are not told.
func (s *Store) PurgeAbsent(buckets []int, present map[string]bool, cutoff time.Time) int {
	var want [DigestBuckets]bool
	for _, b := range buckets {
		if b >= 0 && b < DigestBuckets {
			want[b] = true
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0
	}
	n := 0
	for k, r := range s.recs {
		if !want[BucketOf(k)] || present[k] || !r.Version.Time().Before(cutoff) {
			continue
		}
		s.removeLocked(k)
		if s.db != nil {
			s.dirty[k] = diskOp{rec: r, del: true}
		}
		n++
	}
	s.mu.Unlock()
	if n > 0 && s.db != nil {
		s.signal()
	}
	return n
}

// Len returns the number of records held, tombstones included.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// stateBucket holds the Store's own state in the database, apart from the
// records.
var stateBucket = []byte("state.v1")

// syncedKey holds, as 8 big-endian bytes of Unix milliseconds, the last
// time this node's metadata was known to be in sync with every alive
// member (SetSyncedAt).
var syncedKey = []byte("synced-at")

// SyncedAt returns the last time recorded by SetSyncedAt (persisted across
// restarts), or the zero time if none was ever recorded.
func (s *Store) SyncedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncedAt
}

// SetSyncedAt records that at t this node's metadata had completed a sync
// with every alive member, and persists it (when the Store has a
// database). The tombstone rule compares it with the TTL when the node
// comes back. Times earlier than the recorded one are ignored.
func (s *Store) SetSyncedAt(t time.Time) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if !t.After(s.syncedAt) {
		s.mu.Unlock()
		return nil
	}
	s.syncedAt = t
	s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], uint64(t.UnixMilli()))
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(stateBucket)
		if err != nil {
			return err
		}
		return b.Put(syncedKey, v[:])
	})
	if err != nil {
		return fmt.Errorf("persist sync time: %w", err)
	}
	return nil
}

// loadSyncedAt reads the persisted sync time inside load's transaction.
func (s *Store) loadSyncedAt(tx *bolt.Tx) {
	b := tx.Bucket(stateBucket)
	if b == nil {
		return
	}
	if v := b.Get(syncedKey); len(v) == 8 {
		s.syncedAt = time.UnixMilli(int64(binary.BigEndian.Uint64(v)))
	}
}

// Lookup returns the record held under key, tombstone or not (a tombstone
// until it is collected).
func (s *Store) Lookup(key string) (Record, bool) { return s.lookup(key) }
