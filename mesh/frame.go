package mesh

import (
	"encoding/binary"
	"fmt"
	"io"
	"reflect"

	"github.com/vmihailenco/msgpack/v5"
)

// WriteMsg writes v as one control message: a 4-byte big-endian length and
// v in msgpack. Bulk data follows control messages as raw bytes, never
// inside them.
func WriteMsg(w io.Writer, v any) error {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return err
	}
	buf := make([]byte, 4, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

// ReadMsg reads one control message written by WriteMsg into v, refusing a
// message longer than limit bytes before reading it, and one whose headers
// would make the decoder allocate more than about 8 times its length
// (see checkMsgpack).
func ReadMsg(r io.Reader, v any, limit int) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if int64(n) > int64(limit) {
		return fmt.Errorf("message of %d bytes exceeds the limit of %d", n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	slot, entry := elemSizes(reflect.TypeOf(v))
	if err := checkMsgpack(b, slot, entry); err != nil {
		return fmt.Errorf("malformed message: %w", err)
	}
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("malformed message: %w", err)
	}
	return nil
}
