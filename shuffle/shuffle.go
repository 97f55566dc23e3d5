// Package shuffle moves map output to reducers: the map-side sort buffer
// with its spills, combiner and final merge into one partitioned file per
// map task; the local store of those files and the protocol that serves
// their segments to other nodes; and the reduce-side k-way merge that feeds
// a reducer its key groups in order.
//
// Keys and values are byte slices, ordered by (partition, key, value) with
// bytes.Compare, so output is the same whatever order the map output came
// in. Every file and every transfer holds records encoded as
//
//	uvarint(len key) uvarint(len value) key value
//
// with no per-record framing beyond that; msgpack is only for control
// messages. Hot paths allocate nothing per record: records live in arenas
// and buffers that are reused, and sorts run on an index of offsets.
//
// A map output is two files. The data file holds every partition's
// records, sorted, one partition after the other. The index file (see
// ReadIndex) holds one Segment per partition, offset, length, record count
// and CRC-32C, and a checksum of itself; it is renamed into place after
// the data file, so whoever finds an index finds its data. Readers of a
// segment (Store.Open, Fetch) check its CRC at its end.
//
// Map-only jobs do not use this package: their output is written in
// emission order by the scheduler.
//
// shuffle imports nothing of Shoal's but mesh.
package shuffle

import (
	"errors"
	"fmt"
	"hash/crc32"
)

// PartitionFunc maps a key to a partition in [0, n). It must be
// deterministic and must not retain key.
type PartitionFunc func(key []byte) int

// ValueIter iterates one key group's values in value order. A returned
// slice is valid until the next call of Next; copy it to keep it.
type ValueIter interface {
	Next() (value []byte, ok bool)
}

// CombineFunc is a combiner: it reduces one key group to zero or more pairs
// through emit. key and the values are valid only during the call. emit
// copies its arguments, and must be called with a key equal to the group's
// key (emitting another key is an error: it would break the sort order the
// merge relies on). The values a call emits are sorted before they are
// written. It is never called concurrently.
type CombineFunc func(key []byte, values ValueIter, emit func(key, value []byte) error) error

// Counters are the map side's counters, named as Hadoop names them.
type Counters struct {
	// MapOutputRecords counts Emit calls that were accepted.
	MapOutputRecords int64
	// MapOutputBytes is the sum of key and value lengths as emitted,
	// before combining.
	MapOutputBytes int64
	// CombineInputRecords counts the values given to the combiner, in
	// spills and in merges.
	CombineInputRecords int64
	// CombineOutputRecords counts the pairs the combiner emitted.
	CombineOutputRecords int64
	// SpilledRecords counts records written to disk: in spills, in
	// intermediate merges and in the final output.
	SpilledRecords int64
	// SpilledBytes counts the bytes of those records as written.
	SpilledBytes int64
}

// Errors of the package.
var (
	// ErrNotFound: the node holds no such map output (it was never
	// written there, or removed). Returned by Store.Open and Fetch.
	ErrNotFound = errors.New("map output not found")
	// ErrCorrupt: a record stream, index or segment is malformed,
	// truncated or fails its checksum.
	ErrCorrupt = errors.New("corrupt shuffle data")
	// ErrInvalidName: a job or task name is not [A-Za-z0-9._-]+, is "." or
	// "..", or is longer than 200 bytes.
	ErrInvalidName = errors.New("invalid job or task name")
	// ErrCombinerKey: a combiner emitted a key other than its group's.
	ErrCombinerKey = errors.New("combiner changed the key")
)

// MaxPartitions bounds MapConfig.Partitions and the entries of an index.
const MaxPartitions = 1 << 20

// castagnoli is the CRC-32C table of segment checksums.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// validName reports whether s may name a job or a task: it becomes a path
// element, so it must not be able to leave its directory.
func validName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

func checkName(kind, s string) error {
	if !validName(s) {
		return fmt.Errorf("%s %q: %w", kind, s, ErrInvalidName)
	}
	return nil
}

// quote renders a key for an error message, cut to a readable length.
func quote(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%q…", b[:64])
	}
	return fmt.Sprintf("%q", b)
}
