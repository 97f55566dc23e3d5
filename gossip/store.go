package gossip

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrClosed is returned by the Store's write methods after the Node that
// owns it has been shut down.
var ErrClosed = errors.New("record store closed")

// ErrBadStore is wrapped by the error New returns when the record store's
// database file is unusable: empty (0 bytes: a bbolt file is never empty
// once created), not a bbolt file, or failing bbolt's consistency check.
// The file is left as it was. The error is a *BadStoreError.
var ErrBadStore = errors.New("record store file is unusable")

// BadStoreError says which database file is unusable and why.
type BadStoreError struct {
	Path   string
	Reason string // "empty (0 bytes)", "corrupt (…)", "not a regular file"
}

func (e *BadStoreError) Error() string { return fmt.Sprintf("record store %s is %s", e.Path, e.Reason) }

// Unwrap makes errors.Is(err, ErrBadStore) hold.
func (e *BadStoreError) Unwrap() error { return ErrBadStore }

// source says where a change applied to the Store came from.
type source int

const (
	// fromLocal is a Put or Delete on this node.
	fromLocal source = iota
	// fromMessage is a record received in a broadcast or reliable message.
	fromMessage
	// fromPushPull is a record received in a push/pull state exchange.
	fromPushPull
)

// storeConfig configures openStore. Every field is required except DBPath
// and OnApply.
type storeConfig struct {
	// Name is the local node's name, written into the Version of local writes.
	Name string
	// DBPath is the bbolt file; "" keeps the records in memory only.
	DBPath string
	// TTL is how long a tombstone lives, measured from its HLC time.
	TTL time.Duration
	// MaxDrift is how far ahead of Now a remote record's HLC time may be;
	// records further ahead are rejected (logged and counted), never merged
	// nor observed by the clock. 0 means the default, one minute.
	MaxDrift time.Duration
	// Now is the clock of the HLC and of tombstone expiry.
	Now func() time.Time
	// Logger receives persistence and merge problems.
	Logger *slog.Logger
	// FlushDelay is how long remote changes gather before they are written
	// in one transaction. 0 means mergeFlushDelay.
	FlushDelay time.Duration
	// OnApply is called for every change the Store applies, in apply order,
	// with the Store's lock held: it must not block and must not call the
	// Store. The Node uses it to broadcast changes.
	OnApply func(r Record, src source)
}

// Store is the replicated record set: every node holds all of it. Writes
// are ordered by Version and resolved last-writer-wins, deletions are
// tombstones that expire TTL after they were written, and every change is
// persisted in bbolt when a database path is configured.
//
// Local writes are on disk when Put or Delete returns. Records merged from
// other nodes reach the disk in the background, in batches gathered over
// mergeFlushDelay, so a crash may lose the last few of them; the nodes that
// wrote them still hold them, and push/pull brings them back.
//
// The Store itself does no networking: the Node feeds it remote records and
// spreads its local writes. All methods are safe for concurrent use.
type Store struct {
	name     string
	ttl      time.Duration
	maxDrift time.Duration
	now      func() time.Time
	log      *slog.Logger
	db       *bolt.DB // nil when in memory only
	onApply  func(Record, source)

	// stats counts what merges did; read with Stats.
	stats storeStats

	mu       sync.Mutex
	recs     map[string]Record
	keys     *btree.BTreeG[string] // the keys of recs, in order (prefix scans)
	digest   digestState           // of recs
	syncedAt time.Time             // see SetSyncedAt
	clock    hlc
	closed   bool
	inflight sync.WaitGroup // local writes between the version and the apply
	watchers map[*watcher]struct{}
	// dirty holds remote changes and expiries not yet written to disk, by
	// key; the background goroutine writes them in batches.
	dirty map[string]diskOp

	wake       chan struct{} // capacity 1: "dirty may be non-empty"
	flushDelay time.Duration // storeConfig.FlushDelay
	quit       chan struct{}
	done       chan struct{}
	closeOnce  sync.Once
	closeErr   error
}

// DefaultMaxClockDrift is the default of Config.MaxClockDrift.
const DefaultMaxClockDrift = time.Minute

// storeStats are the Store's counters.
type storeStats struct {
	rejectedAhead atomic.Int64
	diskCommits   atomic.Int64
}

// StoreStats is a snapshot of the Store's counters since it opened.
type StoreStats struct {
	// RejectedAhead counts remote records refused because their version's
	// time was more than the maximum clock drift ahead of the local clock.
	RejectedAhead int64
	// DiskCommits counts database transactions committed (each one
	// fsyncs): one per local write, one per background batch of remote
	// changes and expiries.
	DiskCommits int64
}

// Stats returns the Store's counters.
func (s *Store) Stats() StoreStats {
	return StoreStats{RejectedAhead: s.stats.rejectedAhead.Load(), DiskCommits: s.stats.diskCommits.Load()}
}

// diskOp is a pending change to the database: write rec, or (del) remove
// the key if the stored version is not newer than rec's.
type diskOp struct {
	rec Record
	del bool
}

// watcher is one Watch subscription.
type watcher struct {
	prefix string
	p      *pump[Record]
}

// bucketName is the bbolt bucket holding the records, msgpack-encoded by key.
var bucketName = []byte("records.v1")

// openStore opens (or creates) the database, loads the records and starts
// the Store's background goroutine (persistence and tombstone expiry). The
// caller must close the Store.
func openStore(cfg storeConfig) (*Store, error) {
	s := &Store{
		name:       cfg.Name,
		ttl:        cfg.TTL,
		maxDrift:   cmp.Or(cfg.MaxDrift, DefaultMaxClockDrift),
		flushDelay: cmp.Or(cfg.FlushDelay, mergeFlushDelay),
		now:        cfg.Now,
		log:        cfg.Logger,
		onApply:    cfg.OnApply,
		recs:       make(map[string]Record),
		keys:       btree.NewOrderedG[string](32),
		clock:      hlc{now: cfg.Now},
		watchers:   make(map[*watcher]struct{}),
		dirty:      make(map[string]diskOp),
		wake:       make(chan struct{}, 1),
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if s.onApply == nil {
		s.onApply = func(Record, source) {}
	}
	if cfg.DBPath != "" {
		db, err := openDB(cfg.DBPath)
		if err != nil {
			return nil, err
		}
		s.db = db
		if err := s.load(); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("load record store %s: %w", cfg.DBPath, err)
		}
	}
	go s.run()
	return s, nil
}

// openDB opens the bbolt file at path, creating it if it does not exist,
// and checks an existing one whole before trusting it. bbolt initialises a
// 0-byte file as a new empty database and panics on some garbled pages, so
// both are caught here and reported as ErrBadStore: starting on an empty or
// half-read namespace would make this node believe files and jobs are gone.
func openDB(path string) (db *bolt.DB, err error) {
	fi, statErr := os.Stat(path)
	switch {
	case statErr == nil && !fi.Mode().IsRegular():
		return nil, &BadStoreError{Path: path, Reason: "not a regular file"}
	case statErr == nil && fi.Size() == 0:
		return nil, &BadStoreError{Path: path, Reason: "empty (0 bytes)"}
	case statErr != nil && !errors.Is(statErr, fs.ErrNotExist):
		return nil, fmt.Errorf("open record store: %w", statErr)
	}
	exists := statErr == nil
	corrupt := func(cause any) error {
		return &BadStoreError{Path: path, Reason: fmt.Sprintf("corrupt (%v)", cause)}
	}
	// bbolt reads the file through mmap: a page number that points past the
	// end of a truncated or garbled file faults. Make such faults panics in
	// this goroutine, and turn the panics (bbolt's own too) into errors.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, corrupt(p)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if exists && (errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrVersionMismatch) ||
			errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrInvalidMapping)) {
			return nil, corrupt(err)
		}
		return nil, fmt.Errorf("open record store %s: %w", path, err)
	}
	if !exists {
		return db, nil
	}
	// Touch every page reachable from the root in this goroutine first,
	// then let bbolt check its invariants (in a goroutine of its own).
	var sum byte
	bad := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return walkBucket(b, &sum)
		})
	})
	if bad == nil {
		_ = db.View(func(tx *bolt.Tx) error {
			for e := range tx.Check() {
				if bad == nil {
					bad = e
				}
			}
			return nil
		})
	}
	if bad != nil {
		_ = db.Close()
		return nil, corrupt(bad)
	}
	return db, nil
}

// walkBucket reads every key and value under b, nested buckets included.
func walkBucket(b *bolt.Bucket, sum *byte) error {
	return b.ForEach(func(k, v []byte) error {
		for _, c := range k {
			*sum += c
		}
		if v == nil {
			if nb := b.Bucket(k); nb != nil {
				return walkBucket(nb, sum)
			}
			return nil
		}
		for _, c := range v {
			*sum += c
		}
		return nil
	})
}

// load reads every record from the database into memory and advances the
// clock past all of them, so a restarted node never reissues a timestamp.
func (s *Store) load() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketName)
		if err != nil {
			return err
		}
		s.loadSyncedAt(tx)
		return b.ForEach(func(k, v []byte) error {
			r, err := decodeDiskRecord(v)
			if err == nil && r.Key != string(k) {
				err = fmt.Errorf("stored under key %q", k)
			}
			if err != nil {
				s.log.Error("gossip: skipping unreadable stored record", "key", string(k), "err", err)
				return nil
			}
			s.setLocked(r)
			s.clock.observe(r.Version.HLC)
			return nil
		})
	})
}

// Put writes value under key with a new version and returns the record.
// When Put returns, the record is on disk (if the Store has a database),
// visible to Get and queued for the cluster. Put copies value. It returns
// an error wrapping ErrInvalidKey, ErrTooLarge or ErrClosed for a bad key,
// a value over MaxValueLen bytes or a closed Store.
func (s *Store) Put(key string, value []byte) (Record, error) {
	if err := checkKey(key); err != nil {
		return Record{}, fmt.Errorf("put: %w", err)
	}
	if len(value) > MaxValueLen {
		return Record{}, fmt.Errorf("put %q: value of %d bytes exceeds %d: %w", key, len(value), MaxValueLen, ErrTooLarge)
	}
	return s.writeOne(Record{Key: key, Value: bytes.Clone(value)})
}

// Delete writes a tombstone for key (whether or not the key is known here:
// another node may hold it). It returns an error wrapping ErrInvalidKey or
// ErrClosed for a bad key or a closed Store.
func (s *Store) Delete(key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	_, err := s.writeOne(Record{Key: key, Deleted: true})
	return err
}

// DeleteAll writes a tombstone for each of keys, as Delete does, in one
// commit to disk per maxBatch keys rather than one per key: the job
// history's clean-up deletes every status line of a job at once. Every
// key is checked first, and a bad one writes none. It returns an error
// wrapping ErrInvalidKey or ErrClosed; on an error persisting a batch,
// the batches before it are written.
func (s *Store) DeleteAll(keys []string) error {
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return fmt.Errorf("delete: %w", err)
		}
	}
	for len(keys) > 0 {
		n := min(len(keys), maxBatch)
		recs := make([]Record, n)
		for i, k := range keys[:n] {
			recs[i] = Record{Key: k, Deleted: true}
		}
		if err := s.write(recs); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// maxBatch bounds the records DeleteAll writes in one disk transaction.
const maxBatch = 1024

// writeOne versions r, persists it, then applies it.
func (s *Store) writeOne(r Record) (Record, error) {
	recs := []Record{r}
	if err := s.write(recs); err != nil {
		return Record{}, err
	}
	return recs[0], nil
}

// write versions recs in place, persists them in one transaction, then
// applies them.
func (s *Store) write(recs []Record) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("write %q: %w", recs[0].Key, ErrClosed)
	}
	for i := range recs {
		recs[i].Version = Version{HLC: s.clock.tick(), Node: s.name}
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()

	if s.db != nil {
		ops := make([]diskOp, len(recs))
		for i, r := range recs {
			ops[i] = diskOp{rec: r}
		}
		// Outside the lock: an fsync must not stall remote merges.
		if err := s.db.Update(func(tx *bolt.Tx) error { return writeOps(tx, ops) }); err != nil {
			if len(recs) == 1 {
				return fmt.Errorf("write %q: persist: %w", recs[0].Key, err)
			}
			return fmt.Errorf("write %d records from %q: persist: %w", len(recs), recs[0].Key, err)
		}
		s.stats.diskCommits.Add(1)
	}
	s.mu.Lock()
	for _, r := range recs {
		s.applyLocked(r, fromLocal)
	}
	s.mu.Unlock()
	return nil
}

// Get returns the live record under key; false if it is missing or deleted.
func (s *Store) Get(key string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[key]
	if !ok || r.Deleted {
		return Record{}, false
	}
	return r, true
}

// Scan returns the live records whose key starts with prefix, sorted by key.
// Its cost is the records under prefix, not the records held.
func (s *Store) Scan(prefix string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	s.eachLocked(prefix, func(r Record) bool {
		if !r.Deleted {
			out = append(out, r)
		}
		return true
	})
	return out
}

// First returns the live record with the smallest key at or after from
// that starts with prefix; false when there is none. Its cost is a
// lookup in the ordered keys plus the tombstones it skips, not the
// records under prefix: a caller pages through a prefix, or skips a
// part of it, by calling First again from past the last key it used.
func (s *Store) First(prefix, from string) (Record, bool) {
	if from < prefix {
		from = prefix
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out Record
	found := false
	s.keys.AscendGreaterOrEqual(from, func(k string) bool {
		if !strings.HasPrefix(k, prefix) {
			return false
		}
		if r := s.recs[k]; !r.Deleted {
			out, found = r, true
			return false
		}
		return true
	})
	return out, found
}

// Export returns every record whose key starts with prefix, tombstones
// included (expired ones excepted), sorted by key: what another node needs
// to Merge to catch up on that prefix without waiting for gossip.
func (s *Store) Export(prefix string) []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []Record
	s.eachLocked(prefix, func(r Record) bool {
		if !(r.Deleted && s.expired(r, now)) {
			out = append(out, r)
		}
		return true
	})
	return out
}

// Merge applies records taken from another node (its Export), last writer
// wins, exactly as a push/pull exchange does, and returns how many were
// newer than what this Store held. Invalid records are skipped and
// reported in the error; the valid ones are applied regardless. Merge does
// not re-broadcast: the records' writers did. It returns ErrClosed after
// the Node has shut down. Merge keeps references to the records' values.
func (s *Store) Merge(recs []Record) (int, error) {
	var errs []error
	valid := make([]Record, 0, len(recs))
	for i := range recs {
		if err := validateRecord(&recs[i]); err != nil {
			errs = append(errs, err)
			continue
		}
		valid = append(valid, recs[i])
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return 0, fmt.Errorf("merge: %w", ErrClosed)
	}
	n := s.merge(valid, fromPushPull)
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("merge: skipped %d invalid records: %w", len(errs), err)
	}
	return n, nil
}

// Watch returns a channel that receives every change applied to this Store
// — local writes and records merged from other nodes — whose key starts
// with prefix, in apply order; deletions arrive as tombstones (Deleted
// true). Tombstones that expire are not reported. The Store never blocks on
// a slow watcher: changes queue in memory until read.
//
// cancel stops the watch and closes the channel; it is safe to call more
// than once. Node.Shutdown closes every watch channel.
func (s *Store) Watch(prefix string) (changes <-chan Record, cancel func()) {
	w := &watcher{prefix: prefix, p: newPump[Record]()}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		w.p.stop()
		return w.p.out, func() {}
	}
	s.watchers[w] = struct{}{}
	s.mu.Unlock()
	return w.p.out, func() {
		s.mu.Lock()
		delete(s.watchers, w)
		s.mu.Unlock()
		w.p.stop()
	}
}

// applyLocked applies r if it is newer than what the Store holds and
// reports whether it did. s.mu must be held.
func (s *Store) applyLocked(r Record, src source) bool {
	if cur, ok := s.recs[r.Key]; ok && cur.Version.Compare(r.Version) >= 0 {
		return false
	}
	s.setLocked(r)
	for w := range s.watchers {
		if strings.HasPrefix(r.Key, w.prefix) {
			w.p.push(r)
		}
	}
	s.onApply(r, src)
	return true
}

// merge applies records received from another node (validated by the
// caller), advancing the clock past each, and returns how many were newer
// than what the Store held. Changes reach the disk asynchronously: merge
// runs inside memberlist's receive paths and must not wait for an fsync.
// A merge into a closed Store does nothing.
func (s *Store) merge(recs []Record, src source) int {
	if len(recs) == 0 {
		return 0
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0
	}
	horizon := s.now().Add(s.maxDrift).UnixMilli()
	n := 0
	var ahead *Record
	rejected := 0
	for i, r := range recs {
		if ms := int64(r.Version.HLC >> logicalBits); ms > horizon {
			// Merging it would drag the HLC (and every later local write)
			// to the writer's clock, or past the largest valid timestamp.
			ahead = &recs[i]
			rejected++
			continue
		}
		s.clock.observe(r.Version.HLC)
		if s.applyLocked(r, src) {
			n++
			if s.db != nil {
				s.dirty[r.Key] = diskOp{rec: r}
			}
		}
	}
	s.mu.Unlock()
	if ahead != nil {
		s.stats.rejectedAhead.Add(int64(rejected))
		s.log.Warn("gossip: rejected records written by a clock too far ahead of ours",
			"records", rejected, "max_drift", s.maxDrift, "key", ahead.Key,
			"version", ahead.Version.String(), "writer_time", ahead.Version.Time().UTC(), "our_time", s.now().UTC())
	}
	if n > 0 && s.db != nil {
		s.signal()
	}
	return n
}

// snapshot returns every record, tombstones included but not expired ones,
// for a push/pull exchange.
func (s *Store) snapshot() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.recs))
	now := s.now()
	for _, r := range s.recs {
		if r.Deleted && s.expired(r, now) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// expired reports whether tombstone r is older than the TTL at now.
func (s *Store) expired(r Record, now time.Time) bool {
	return now.Sub(r.Version.Time()) > s.ttl
}

// expireTombstones drops tombstones older than the TTL, from memory and
// (asynchronously) from disk, and returns how many it dropped. A record
// still held by a node that was away longer than the TTL can come back
// when that node returns: that is the TTL's contract.
func (s *Store) expireTombstones() int {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0
	}
	now := s.now()
	n := 0
	for k, r := range s.recs {
		if r.Deleted && s.expired(r, now) {
			s.removeLocked(k)
			if s.db != nil {
				s.dirty[k] = diskOp{rec: r, del: true}
			}
			n++
		}
	}
	s.mu.Unlock()
	if n > 0 && s.db != nil {
		s.signal()
	}
	return n
}

// signal wakes the background goroutine.
func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// mergeFlushDelay is how long the background goroutine gathers remote
// changes after the first one before writing them in one transaction. A
// one-line job's ten or so records reached each node one at a time, and
// each took a transaction of its own (two fdatasyncs), most of the
// metadata database's work. Nothing waits for these writes: merged
// records are applied in memory at once, and what a crash loses of them
// the nodes that wrote them still hold.
const mergeFlushDelay = 50 * time.Millisecond

// reapInterval is how often the background goroutine expires tombstones.
func (s *Store) reapInterval() time.Duration {
	return min(max(s.ttl/8, 100*time.Millisecond), time.Minute)
}

// run is the Store's background goroutine, owned by the Store and stopped by
// Close: it writes remote changes to disk and expires tombstones.
func (s *Store) run() {
	defer close(s.done)
	t := time.NewTicker(s.reapInterval())
	defer t.Stop()
	for {
		select {
		case <-s.wake:
			// Let the records that follow join the same transaction: a
			// job's records arrive one after another, pushed and then
			// gossiped, and each batch costs a commit with its fsyncs.
			t := time.NewTimer(s.flushDelay)
			select {
			case <-t.C:
			case <-s.quit:
				t.Stop()
				s.flush()
				return
			}
			s.flush()
		case <-t.C:
			s.expireTombstones()
			s.flush()
		case <-s.quit:
			s.flush()
			return
		}
	}
}

// flush writes the pending remote changes in one transaction. On failure
// it logs and puts the changes back for the next attempt unless newer ones
// replaced them meanwhile.
func (s *Store) flush() {
	if s.db == nil {
		return
	}
	s.mu.Lock()
	if len(s.dirty) == 0 {
		s.mu.Unlock()
		return
	}
	ops := make([]diskOp, 0, len(s.dirty))
	for _, op := range s.dirty {
		ops = append(ops, op)
	}
	clear(s.dirty)
	s.mu.Unlock()

	err := s.db.Update(func(tx *bolt.Tx) error { return writeOps(tx, ops) })
	if err == nil {
		s.stats.diskCommits.Add(1)
		return
	}
	s.log.Error("gossip: persisting records failed; will retry", "records", len(ops), "err", err)
	s.mu.Lock()
	for _, op := range ops {
		if _, ok := s.dirty[op.rec.Key]; !ok {
			s.dirty[op.rec.Key] = op
		}
	}
	s.mu.Unlock()
}

// writeOps applies ops to the database last-writer-wins: a record is only
// written over an older version, and a key is only removed if the stored
// version is not newer than the expired tombstone. So the order in which
// local writes and background flushes reach the disk does not matter.
func writeOps(tx *bolt.Tx, ops []diskOp) error {
	b, err := tx.CreateBucketIfNotExists(bucketName)
	if err != nil {
		return err
	}
	for _, op := range ops {
		k := []byte(op.rec.Key)
		if old := b.Get(k); old != nil {
			if cur, err := decodeDiskRecord(old); err == nil {
				c := cur.Version.Compare(op.rec.Version)
				if c > 0 || (c == 0 && !op.del) {
					continue
				}
			}
		}
		if op.del {
			if err := b.Delete(k); err != nil {
				return err
			}
			continue
		}
		v, err := encodeDiskRecord(op.rec)
		if err != nil {
			return err
		}
		if err := b.Put(k, v); err != nil {
			return err
		}
	}
	return nil
}

// close stops the Store: it closes every watch channel, writes what is
// pending to disk and closes the database. Later writes fail with
// ErrClosed; reads keep answering from memory. It is safe to call more
// than once; every call returns the first call's result. Node.Shutdown
// calls it.
func (s *Store) close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.inflight.Wait() // local writes already versioned finish applying

		s.mu.Lock()
		ws := s.watchers
		s.watchers = make(map[*watcher]struct{})
		s.mu.Unlock()
		for w := range ws {
			w.p.stop()
		}

		close(s.quit)
		<-s.done
		if s.db != nil {
			s.mu.Lock()
			lost := len(s.dirty)
			s.mu.Unlock()
			var errs []error
			if lost > 0 {
				errs = append(errs, fmt.Errorf("%d remote changes not persisted", lost))
			}
			if err := s.db.Close(); err != nil {
				errs = append(errs, err)
			}
			if err := errors.Join(errs...); err != nil {
				s.closeErr = fmt.Errorf("close record store: %w", err)
			}
		}
	})
	return s.closeErr
}

// lookup returns the record under key, tombstone or not.
func (s *Store) lookup(key string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[key]
	return r, ok
}
