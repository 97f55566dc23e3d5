package gossip

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Limits on what a record may hold. They bound what a node accepts from the
// wire as well as what Put accepts.
const (
	// MaxKeyLen is the longest key, in bytes.
	MaxKeyLen = 512
	// MaxValueLen is the largest value, in bytes.
	MaxValueLen = 64 << 10
	// maxNodeNameLen bounds Version.Node on the wire.
	maxNodeNameLen = 512
	// maxHLC bounds a timestamp on the wire (about the year 6400), so that
	// the clock arithmetic never overflows.
	maxHLC = 1 << 63
)

// ErrTooLarge is returned by Put when the value exceeds MaxValueLen bytes.
var ErrTooLarge = errors.New("value too large")

// ErrInvalidKey is returned by Put and Delete for an empty key or one longer
// than MaxKeyLen bytes.
var ErrInvalidKey = errors.New("invalid key")

// Record is one entry of the replicated store.
type Record struct {
	// Key is non-empty and at most MaxKeyLen bytes.
	Key string `msgpack:"k"`
	// Value is at most MaxValueLen bytes; nil for a tombstone. Callers must
	// not modify it: the Store shares it.
	Value []byte `msgpack:"v,omitempty"`
	// Version orders writes of the same key; the highest wins.
	Version Version `msgpack:"ver"`
	// Deleted marks a tombstone.
	Deleted bool `msgpack:"d,omitempty"`
}

// checkKey reports whether key is acceptable, wrapping ErrInvalidKey.
func checkKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("empty key: %w", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("key of %d bytes exceeds %d: %w", len(key), MaxKeyLen, ErrInvalidKey)
	}
	return nil
}

// validateRecord checks a record that came from the wire or the disk.
func validateRecord(r *Record) error {
	if err := checkKey(r.Key); err != nil {
		return err
	}
	if len(r.Value) > MaxValueLen {
		return fmt.Errorf("record %q: value of %d bytes: %w", r.Key, len(r.Value), ErrTooLarge)
	}
	if r.Deleted && len(r.Value) > 0 {
		return fmt.Errorf("record %q: tombstone with a value", r.Key)
	}
	if r.Version.HLC == 0 || r.Version.HLC >= maxHLC {
		return fmt.Errorf("record %q: bad timestamp %d", r.Key, r.Version.HLC)
	}
	if n := r.Version.Node; n == "" || len(n) > maxNodeNameLen || !utf8.ValidString(n) {
		return fmt.Errorf("record %q: bad writer name", r.Key)
	}
	return nil
}

// msgKind tags a message of our own protocol, carried in memberlist user
// messages (broadcasts and SendReliable) and push/pull state.
type msgKind uint8

const (
	// kindRecords carries records to merge (broadcast or reliable send).
	kindRecords msgKind = 1
	// kindState carries the whole record set (push/pull).
	kindState msgKind = 2
	// kindLeave announces that Node is leaving gracefully, so that the
	// members that later see it go mark it left rather than dead.
	kindLeave msgKind = 3
)

// message is the msgpack envelope of everything this package sends.
type message struct {
	Kind    msgKind  `msgpack:"t"`
	Records []Record `msgpack:"r,omitempty"`
	Node    string   `msgpack:"n,omitempty"`
}

// encodeMessage encodes m with msgpack.
func encodeMessage(m *message) ([]byte, error) {
	b, err := msgpack.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode message: %w", err)
	}
	return b, nil
}

// decodeMessage decodes and validates a message from the wire. Records that
// fail validation make the whole message invalid: a peer that sends one is
// broken or hostile, and partial application would hide it.
func decodeMessage(b []byte) (*message, error) {
	if len(b) == 0 {
		return nil, errors.New("empty message")
	}
	var m message
	if err := msgpack.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode message: %w", err)
	}
	switch m.Kind {
	case kindRecords, kindState:
		for i := range m.Records {
			if err := validateRecord(&m.Records[i]); err != nil {
				return nil, fmt.Errorf("message kind %d: %w", m.Kind, err)
			}
		}
	case kindLeave:
		if m.Node == "" || len(m.Node) > maxNodeNameLen {
			return nil, errors.New("leave notice without a valid node name")
		}
	default:
		return nil, fmt.Errorf("unknown message kind %d", m.Kind)
	}
	return &m, nil
}

// encodeDiskRecord encodes a record for the database.
func encodeDiskRecord(r Record) ([]byte, error) {
	b, err := msgpack.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("encode record %q: %w", r.Key, err)
	}
	return b, nil
}

// decodeDiskRecord decodes and validates a record from the database.
func decodeDiskRecord(b []byte) (Record, error) {
	var r Record
	if err := msgpack.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("decode record: %w", err)
	}
	if err := validateRecord(&r); err != nil {
		return Record{}, err
	}
	return r, nil
}

// errUnexpectedKind reports a valid message in the wrong place.
func errUnexpectedKind(k msgKind) error {
	return fmt.Errorf("unexpected message kind %d", k)
}

// Decoding by hand. msgpack v5.4.1's reflective decoder preallocates a
// slice of whatever length an array header claims (its allocation limit
// check is inverted), so five bytes can ask for gigabytes; it allocates a
// megabyte or two for any string whose header claims more, whatever
// follows; and it skips unknown fields recursively without a depth limit.
// Every type that comes from the wire therefore decodes itself: arrays grow
// as elements actually arrive, strings and byte slices are checked against
// their limits before anything is allocated, and unknown fields are
// skipped, to a bounded depth and in small reads, and ignored (so a newer
// peer may add fields).

const (
	// maxSkipDepth bounds the nesting of an unknown field's value.
	maxSkipDepth = 16
	// maxFieldNameLen bounds a field name.
	maxFieldNameLen = 64
)

// DecodeMsgpack implements msgpack.CustomDecoder.
func (m *message) DecodeMsgpack(d *msgpack.Decoder) error {
	return decodeMap(d, "message", func(field string) error {
		var err error
		switch field {
		case "t":
			var k uint64
			if k, err = d.DecodeUint64(); err == nil && k > 255 {
				err = fmt.Errorf("message kind %d out of range", k)
			}
			m.Kind = msgKind(k)
		case "r":
			m.Records, err = decodeRecords(d)
		case "n":
			m.Node, err = decodeString(d, maxNodeNameLen)
		default:
			err = skipValue(d, 0)
		}
		return err
	})
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (r *Record) DecodeMsgpack(d *msgpack.Decoder) error {
	return decodeMap(d, "record", func(field string) error {
		var err error
		switch field {
		case "k":
			r.Key, err = decodeString(d, MaxKeyLen)
		case "v":
			r.Value, err = decodeBytes(d, MaxValueLen)
		case "ver":
			err = r.Version.DecodeMsgpack(d)
		case "d":
			r.Deleted, err = d.DecodeBool()
		default:
			err = skipValue(d, 0)
		}
		return err
	})
}

// DecodeMsgpack implements msgpack.CustomDecoder.
func (v *Version) DecodeMsgpack(d *msgpack.Decoder) error {
	return decodeMap(d, "version", func(field string) error {
		var err error
		switch field {
		case "h":
			v.HLC, err = d.DecodeUint64()
		case "n":
			v.Node, err = decodeString(d, maxNodeNameLen)
		default:
			err = skipValue(d, 0)
		}
		return err
	})
}

// decodeMap decodes a msgpack map with string keys, calling field for each
// key with the decoder positioned at its value.
func decodeMap(d *msgpack.Decoder, what string, field func(string) error) error {
	n, err := d.DecodeMapLen()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n < 0 {
		return fmt.Errorf("%s is nil", what)
	}
	for range n {
		k, err := decodeString(d, maxFieldNameLen)
		if err != nil {
			return fmt.Errorf("%s field name: %w", what, err)
		}
		if err := field(k); err != nil {
			return fmt.Errorf("%s field %q: %w", what, k, err)
		}
	}
	return nil
}

// decodeRecords decodes an array of records, growing the slice only as
// records arrive, whatever length the header claims.
func decodeRecords(d *msgpack.Decoder) ([]Record, error) {
	n, err := d.DecodeArrayLen()
	if err != nil || n <= 0 {
		return nil, err
	}
	out := make([]Record, 0, min(n, 64))
	for i := range n {
		var r Record
		if err := r.DecodeMsgpack(d); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// skipValue skips one value, refusing nesting deeper than maxSkipDepth.
func skipValue(d *msgpack.Decoder, depth int) error {
	if depth > maxSkipDepth {
		return errors.New("value nested too deep")
	}
	c, err := d.PeekCode()
	if err != nil {
		return err
	}
	switch {
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := d.DecodeArrayLen()
		if err != nil {
			return err
		}
		for range max(n, 0) {
			if err := skipValue(d, depth+1); err != nil {
				return err
			}
		}
		return nil
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err := d.DecodeMapLen()
		if err != nil {
			return err
		}
		for range 2 * max(n, 0) {
			if err := skipValue(d, depth+1); err != nil {
				return err
			}
		}
		return nil
	case msgpcode.IsString(c) || msgpcode.IsBin(c):
		n, err := d.DecodeBytesLen()
		if err != nil {
			return err
		}
		return discard(d, n)
	case msgpcode.IsExt(c):
		_, n, err := d.DecodeExtHeader()
		if err != nil {
			return err
		}
		return discard(d, n)
	}
	return d.Skip() // a number, bool or nil: fixed size
}

// decodeBytes decodes a string or binary of at most limit bytes (nil for
// a msgpack nil), refusing a longer one before allocating it.
func decodeBytes(d *msgpack.Decoder, limit int) ([]byte, error) {
	n, err := d.DecodeBytesLen()
	if err != nil || n < 0 {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%d bytes exceeds the limit of %d", n, limit)
	}
	b := make([]byte, n)
	if err := d.ReadFull(b); err != nil {
		return nil, err
	}
	return b, nil
}

// decodeString is decodeBytes for a string.
func decodeString(d *msgpack.Decoder, limit int) (string, error) {
	b, err := decodeBytes(d, limit)
	return string(b), err
}

// discard reads and drops n bytes, a little at a time, so a length header
// that lies costs nothing.
func discard(d *msgpack.Decoder, n int) error {
	var scratch [512]byte
	for n > 0 {
		k := min(n, len(scratch))
		if err := d.ReadFull(scratch[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}
