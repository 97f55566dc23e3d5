package gossip

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// Anti-entropy by digest. Two stores converge in one round over any
// reliable byte stream (the caller provides it; Shoal uses a libp2p stream):
//
//	initiator → server  hello  {root, horizon}
//	server → initiator  digest {equal} or {buckets (DigestBuckets × 8 bytes), horizon}
//	initiator → server  want   {bitmap of the differing buckets}
//	initiator → server  batch… {records of those buckets}, the last with end
//	server → initiator  batch… {records of those buckets}, the last with end
//
// When nothing differs the round is the hello and a one-field answer, so
// its cost does not depend on the number of records; otherwise only the
// differing buckets' records move. Each frame is a 4-byte big-endian length
// and one msgpack message, refused before allocation when longer than
// maxSyncFrame; batches hold about syncBatchBytes of records.
//
// The horizon is the tombstone rule's input: the last time the sender's
// metadata was known to be in sync with every alive member (now, for a
// node in sync). A side whose horizon is older than the tombstone TTL and
// older than the other's is stale: it was away long enough for tombstones
// it never saw to have been collected. The fresher side refuses the stale
// side's records that it does not hold at all and that are older than the
// TTL (MergeFromStale), and the stale side drops its own records of that
// kind that the fresher side lacks (PurgeAbsent), so nothing deleted while
// it was away comes back.

// syncProtoVersion is the protocol's version, sent in the hello.
const syncProtoVersion = 1

// Frame limits.
const (
	// maxSyncFrame bounds one frame on the wire.
	maxSyncFrame = 2 << 20
	// syncBatchBytes is the size a batch of records aims at.
	syncBatchBytes = 1 << 20
)

// syncKind tags a frame.
type syncKind uint8

const (
	syncHello  syncKind = 1
	syncDigest syncKind = 2
	syncWant   syncKind = 3
	syncBatch  syncKind = 4
)

// syncMsg is every frame of the protocol; each kind uses some fields.
type syncMsg struct {
	Kind    syncKind `msgpack:"t"`
	Version int      `msgpack:"v,omitempty"`
	Root    uint64   `msgpack:"r,omitempty"`
	Horizon int64    `msgpack:"h,omitempty"` // Unix ms; 0 = never in sync
	Equal   bool     `msgpack:"eq,omitempty"`
	Buckets []byte   `msgpack:"b,omitempty"` // digest: 8 bytes per bucket; want: a bitmap
	Records []Record `msgpack:"rs,omitempty"`
	End     bool     `msgpack:"end,omitempty"`
}

// DecodeMsgpack implements msgpack.CustomDecoder with the limits of this
// package's other decoders.
func (m *syncMsg) DecodeMsgpack(d *msgpack.Decoder) error {
	return decodeMap(d, "sync message", func(field string) error {
		var err error
		switch field {
		case "t":
			var k uint64
			if k, err = d.DecodeUint64(); err == nil && (k < uint64(syncHello) || k > uint64(syncBatch)) {
				err = fmt.Errorf("sync message kind %d unknown", k)
			}
			m.Kind = syncKind(k)
		case "v":
			m.Version, err = d.DecodeInt()
		case "r":
			m.Root, err = d.DecodeUint64()
		case "h":
			m.Horizon, err = d.DecodeInt64()
		case "eq":
			m.Equal, err = d.DecodeBool()
		case "b":
			m.Buckets, err = decodeBytes(d, 8*DigestBuckets)
		case "rs":
			m.Records, err = decodeRecords(d)
		case "end":
			m.End, err = d.DecodeBool()
		default:
			err = skipValue(d, 0)
		}
		return err
	})
}

// SyncResult says what one anti-entropy round did.
type SyncResult struct {
	// BytesSent and BytesReceived count this side's stream traffic.
	BytesSent, BytesReceived int64
	// Equal is true when the digests matched and no record moved.
	Equal bool
	// Buckets is how many buckets differed.
	Buckets int
	// Applied counts the received records that were newer than ours.
	Applied int
	// Refused counts records of a stale peer refused by the tombstone rule.
	Refused int
	// Purged counts our own records dropped by the tombstone rule, because
	// we were stale and the fresher peer lacks them.
	Purged int
	// PeerHorizon is the horizon the other side announced.
	PeerHorizon time.Time
}

// syncConn frames messages over a stream and counts the bytes.
type syncConn struct {
	r    *bufio.Reader
	w    *bufio.Writer
	sent int64
	recv int64
}

// Buffers are pooled: an idle round is two tiny frames, and allocating
// buffers for it every round would make the garbage collector, whose work
// grows with the store, the round's main cost.
var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

func newSyncConn(rw io.ReadWriter) *syncConn {
	r := readerPool.Get().(*bufio.Reader)
	r.Reset(rw)
	w := writerPool.Get().(*bufio.Writer)
	w.Reset(rw)
	return &syncConn{r: r, w: w}
}

// release returns the buffers to their pools; c must not be used after.
func (c *syncConn) release() {
	c.r.Reset(nil)
	c.w.Reset(nil)
	readerPool.Put(c.r)
	writerPool.Put(c.w)
	c.r, c.w = nil, nil
}

func (c *syncConn) send(m *syncMsg) error {
	b, err := msgpack.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode sync message: %w", err)
	}
	if len(b) > maxSyncFrame {
		return fmt.Errorf("sync frame of %d bytes exceeds %d", len(b), maxSyncFrame)
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(b)))
	if _, err := c.w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	c.sent += int64(len(b)) + 4
	return nil
}

func (c *syncConn) flush() error { return c.w.Flush() }

// recv reads one frame and checks that it is of kind want.
func (c *syncConn) recvMsg(want syncKind) (*syncMsg, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxSyncFrame {
		return nil, fmt.Errorf("sync frame of %d bytes exceeds the limit of %d", n, maxSyncFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return nil, err
	}
	c.recv += int64(n) + 4
	var m syncMsg
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("malformed sync frame: %w", err)
	}
	if m.Kind != want {
		return nil, fmt.Errorf("sync frame of kind %d where %d was expected", m.Kind, want)
	}
	for i := range m.Records {
		if err := validateRecord(&m.Records[i]); err != nil {
			return nil, fmt.Errorf("sync frame: %w", err)
		}
	}
	return &m, nil
}

// errSyncProtocol marks a peer that broke the protocol.
var errSyncProtocol = errors.New("anti-entropy protocol violation")

// horizonMs encodes a horizon for the wire.
func horizonMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// horizonTime decodes a horizon from the wire.
func horizonTime(ms int64) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// isStale reports whether a side with horizon mine is stale facing a side
// with horizon theirs, at cutoff (now less the tombstone TTL).
func isStale(mine, theirs, cutoff time.Time) bool {
	return mine.Before(cutoff) && mine.Before(theirs)
}

// SyncInitiate runs one anti-entropy round as the initiator over rw (the
// other side runs SyncServe). horizon is this node's (see the protocol
// comment). Both sides hold the union of their records, last writer wins,
// when it returns nil. The caller sets deadlines on rw.
func (s *Store) SyncInitiate(rw io.ReadWriter, horizon time.Time) (SyncResult, error) {
	c := newSyncConn(rw)
	defer c.release()
	res, err := s.syncInitiate(c, horizon)
	res.BytesSent, res.BytesReceived = c.sent, c.recv
	return res, err
}

func (s *Store) syncInitiate(c *syncConn, horizon time.Time) (SyncResult, error) {
	var res SyncResult
	if err := c.send(&syncMsg{Kind: syncHello, Version: syncProtoVersion, Root: s.Root(), Horizon: horizonMs(horizon)}); err != nil {
		return res, err
	}
	if err := c.flush(); err != nil {
		return res, err
	}
	dm, err := c.recvMsg(syncDigest)
	if err != nil {
		return res, err
	}
	res.PeerHorizon = horizonTime(dm.Horizon)
	if dm.Equal {
		res.Equal = true
		return res, nil
	}
	if len(dm.Buckets) != 8*DigestBuckets {
		return res, fmt.Errorf("%w: digest of %d bytes", errSyncProtocol, len(dm.Buckets))
	}
	remote := make([]uint64, DigestBuckets)
	for i := range remote {
		remote[i] = binary.BigEndian.Uint64(dm.Buckets[8*i:])
	}
	diff := s.DiffBuckets(remote)
	res.Buckets = len(diff)
	bitmap := make([]byte, DigestBuckets/8)
	for _, b := range diff {
		bitmap[b/8] |= 1 << (b % 8)
	}
	if err := c.send(&syncMsg{Kind: syncWant, Buckets: bitmap}); err != nil {
		return res, err
	}
	if err := s.sendBuckets(c, diff); err != nil {
		return res, err
	}
	cutoff := s.now().Add(-s.ttl)
	iStale := isStale(horizon, res.PeerHorizon, cutoff)
	peerStale := isStale(res.PeerHorizon, horizon, cutoff)
	if err := s.receiveBuckets(c, diff, iStale, peerStale, cutoff, &res); err != nil {
		return res, err
	}
	return res, nil
}

// SyncServe answers one anti-entropy round started by SyncInitiate on the
// other end of rw. horizon is this node's.
func (s *Store) SyncServe(rw io.ReadWriter, horizon time.Time) (SyncResult, error) {
	c := newSyncConn(rw)
	defer c.release()
	res, err := s.syncServe(c, horizon)
	res.BytesSent, res.BytesReceived = c.sent, c.recv
	return res, err
}

func (s *Store) syncServe(c *syncConn, horizon time.Time) (SyncResult, error) {
	var res SyncResult
	hello, err := c.recvMsg(syncHello)
	if err != nil {
		return res, err
	}
	if hello.Version != syncProtoVersion {
		return res, fmt.Errorf("%w: version %d, want %d", errSyncProtocol, hello.Version, syncProtoVersion)
	}
	res.PeerHorizon = horizonTime(hello.Horizon)
	if hello.Root == s.Root() {
		res.Equal = true
		if err := c.send(&syncMsg{Kind: syncDigest, Equal: true, Horizon: horizonMs(horizon)}); err != nil {
			return res, err
		}
		return res, c.flush()
	}
	d := s.Digest()
	buf := make([]byte, 8*DigestBuckets)
	for i, h := range d.Buckets {
		binary.BigEndian.PutUint64(buf[8*i:], h)
	}
	if err := c.send(&syncMsg{Kind: syncDigest, Buckets: buf, Horizon: horizonMs(horizon)}); err != nil {
		return res, err
	}
	if err := c.flush(); err != nil {
		return res, err
	}
	want, err := c.recvMsg(syncWant)
	if err != nil {
		return res, err
	}
	if len(want.Buckets) != DigestBuckets/8 {
		return res, fmt.Errorf("%w: bucket bitmap of %d bytes", errSyncProtocol, len(want.Buckets))
	}
	var diff []int
	for b := range DigestBuckets {
		if want.Buckets[b/8]&(1<<(b%8)) != 0 {
			diff = append(diff, b)
		}
	}
	res.Buckets = len(diff)
	cutoff := s.now().Add(-s.ttl)
	iStale := isStale(horizon, res.PeerHorizon, cutoff)
	peerStale := isStale(res.PeerHorizon, horizon, cutoff)
	if err := s.receiveBuckets(c, diff, iStale, peerStale, cutoff, &res); err != nil {
		return res, err
	}
	return res, s.sendBuckets(c, diff)
}

// sendBuckets streams this store's records of the given buckets in
// batches, the last marked end, and flushes.
func (s *Store) sendBuckets(c *syncConn, buckets []int) error {
	var recs []Record
	if len(buckets) > 0 {
		recs = s.BucketRecords(buckets)
	}
	batch := make([]Record, 0, 256)
	size := 0
	for i, r := range recs {
		batch = append(batch, r)
		size += len(r.Key) + len(r.Value) + len(r.Version.Node) + 32
		if size >= syncBatchBytes && i < len(recs)-1 {
			if err := c.send(&syncMsg{Kind: syncBatch, Records: batch}); err != nil {
				return err
			}
			batch, size = batch[:0], 0
		}
	}
	if err := c.send(&syncMsg{Kind: syncBatch, Records: batch, End: true}); err != nil {
		return err
	}
	return c.flush()
}

// receiveBuckets reads the other side's batches until the end and merges
// them under the tombstone rule; when this side is stale it then drops its
// own old records the other side lacks.
func (s *Store) receiveBuckets(c *syncConn, buckets []int, iStale, peerStale bool, cutoff time.Time, res *SyncResult) error {
	var present map[string]bool
	if iStale {
		present = make(map[string]bool)
	}
	var errs []error
	for {
		m, err := c.recvMsg(syncBatch)
		if err != nil {
			return err
		}
		for _, r := range m.Records {
			if b := BucketOf(r.Key); !containsSorted(buckets, b) {
				return fmt.Errorf("%w: record %q outside the differing buckets", errSyncProtocol, r.Key)
			}
			if present != nil {
				present[r.Key] = true
			}
		}
		var applied int
		if peerStale {
			var refused int
			applied, refused, err = s.MergeFromStale(m.Records, cutoff)
			res.Refused += refused
		} else {
			applied, err = s.Merge(m.Records)
		}
		res.Applied += applied
		if err != nil {
			errs = append(errs, err)
		}
		if m.End {
			break
		}
	}
	if iStale {
		res.Purged = s.PurgeAbsent(buckets, present, cutoff)
	}
	return errors.Join(errs...)
}

// containsSorted reports whether the increasing list xs holds x.
func containsSorted(xs []int, x int) bool {
	lo, hi := 0, len(xs)
	for lo < hi {
		mid := (lo + hi) / 2
		switch {
		case xs[mid] == x:
			return true
		case xs[mid] < x:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return false
}
