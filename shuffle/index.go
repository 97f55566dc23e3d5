package shuffle

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// Segment locates one partition's records in a map output's data file.
type Segment struct {
	Offset  int64  // first byte in the data file
	Length  int64  // bytes
	Records int64  // records
	CRC     uint32 // CRC-32C (Castagnoli) of the segment's bytes
}

// MapOutput is what a MapWriter wrote.
type MapOutput struct {
	Data     string    // path of the data file
	Index    string    // path of the index file
	Segments []Segment // one per partition, in partition order
}

// The index file of a map output, all integers big-endian:
//
//	"SHIX" (4 bytes) | version 1 (uint32) | partitions n (uint32)
//	n × { offset uint64 | length uint64 | records uint64 | crc32c uint32 }
//	CRC-32C of all the bytes before it (uint32)
//
// Segments are contiguous: the first starts at 0, each where the previous
// ends, and the last ends at the data file's end.
const (
	indexMagic   = "SHIX"
	indexVersion = 1
	indexHeader  = 12
	indexEntry   = 28
)

func encodeIndex(segs []Segment) []byte {
	b := make([]byte, 0, indexHeader+indexEntry*len(segs)+4)
	b = append(b, indexMagic...)
	b = binary.BigEndian.AppendUint32(b, indexVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(segs)))
	for _, s := range segs {
		b = binary.BigEndian.AppendUint64(b, uint64(s.Offset))
		b = binary.BigEndian.AppendUint64(b, uint64(s.Length))
		b = binary.BigEndian.AppendUint64(b, uint64(s.Records))
		b = binary.BigEndian.AppendUint32(b, s.CRC)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// parseIndex decodes and checks an index; every inconsistency is an error
// wrapping ErrCorrupt.
func parseIndex(b []byte) ([]Segment, error) {
	bad := func(format string, args ...any) ([]Segment, error) {
		return nil, fmt.Errorf("index: %s: %w", fmt.Sprintf(format, args...), ErrCorrupt)
	}
	if len(b) < indexHeader+4 {
		return bad("%d bytes is too short", len(b))
	}
	if string(b[:4]) != indexMagic {
		return bad("bad magic %q", b[:4])
	}
	if v := binary.BigEndian.Uint32(b[4:]); v != indexVersion {
		return bad("version %d, want %d", v, indexVersion)
	}
	n := binary.BigEndian.Uint32(b[8:])
	if n < 1 || n > MaxPartitions {
		return bad("%d partitions", n)
	}
	if want := indexHeader + indexEntry*int(n) + 4; len(b) != want {
		return bad("%d bytes for %d partitions, want %d", len(b), n, want)
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(b[len(b)-4:]); got != want {
		return bad("checksum %08x, want %08x", got, want)
	}
	segs := make([]Segment, n)
	var end uint64
	for i := range segs {
		e := body[indexHeader+indexEntry*i:]
		off := binary.BigEndian.Uint64(e)
		length := binary.BigEndian.Uint64(e[8:])
		recs := binary.BigEndian.Uint64(e[16:])
		crc := binary.BigEndian.Uint32(e[24:])
		switch {
		case off != end:
			return bad("partition %d starts at %d, not %d", i, off, end)
		case length > 1<<62 || off+length > 1<<62:
			return bad("partition %d is %d bytes long", i, length)
		case recs > length/2 || (recs == 0) != (length == 0):
			return bad("partition %d holds %d records in %d bytes", i, recs, length)
		case length == 0 && crc != 0:
			return bad("partition %d is empty but has checksum %08x", i, crc)
		}
		end = off + length
		segs[i] = Segment{Offset: int64(off), Length: int64(length), Records: int64(recs), CRC: crc}
	}
	return segs, nil
}

// ReadIndex reads and checks an index file. A missing file gives an error
// wrapping fs.ErrNotExist; a malformed or truncated one, ErrCorrupt.
func ReadIndex(path string) ([]Segment, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > indexHeader+indexEntry*MaxPartitions+4 {
		return nil, fmt.Errorf("%s: %d bytes is too long for an index: %w", path, fi.Size(), ErrCorrupt)
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	segs, err := parseIndex(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return segs, nil
}

// dataLength is the length of the data file an index describes.
func dataLength(segs []Segment) int64 {
	last := segs[len(segs)-1]
	return last.Offset + last.Length
}
