package blockstore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ID names a block by the SHA-256 of its bytes, so every read can verify
// what it got.
type ID [sha256.Size]byte

// ErrBadID is returned (wrapped) by ParseID for text that is not a block ID.
var ErrBadID = errors.New("bad block id")

// String is the ID in lower-case hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short is the first 12 hex digits, for logs and tables.
func (id ID) Short() string { return id.String()[:12] }

// IsZero reports whether id is the zero ID, which names no block.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses the hex form.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("%w %q: want %d hex digits", ErrBadID, s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w %q: not hex", ErrBadID, s)
	}
	return id, nil
}

// Sum returns the ID of b.
func Sum(b []byte) ID { return sha256.Sum256(b) }

// SumReader returns the ID of the bytes r yields.
func SumReader(r io.Reader) (ID, error) {
	h := newHasher()
	if _, err := io.CopyBuffer(h, r, make([]byte, 1<<20)); err != nil {
		return ID{}, err
	}
	return idOf(h), nil
}

// newHasher returns the hash that IDs are computed with.
func newHasher() hash.Hash { return sha256.New() }

func idOf(h hash.Hash) ID {
	var id ID
	h.Sum(id[:0])
	return id
}

// MarshalBinary encodes the raw 32 bytes (msgpack uses it).
func (id ID) MarshalBinary() ([]byte, error) { return id[:], nil }

// UnmarshalBinary decodes the raw bytes, rejecting a wrong length.
func (id *ID) UnmarshalBinary(b []byte) error {
	if len(b) != len(id) {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadID, len(b), len(id))
	}
	copy(id[:], b)
	return nil
}

// MarshalText encodes hex (JSON uses it).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes hex.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
