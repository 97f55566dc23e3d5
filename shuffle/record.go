package shuffle

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/bits"
)

// MaxRecordBytes bounds one encoded record: Emit and RecordWriter refuse a
// longer one, and a reader takes a header claiming more for corruption.
const MaxRecordBytes = 1 << 30

// maxHeader is the longest record header: two 10-byte uvarints.
const maxHeader = 2 * binary.MaxVarintLen64

// DefaultRecordBuffer is the buffer size of a RecordReader or RecordWriter
// made with size ≤ 0.
const DefaultRecordBuffer = 256 << 10

// AppendRecord appends the encoding of one pair to dst and returns the
// extended slice.
func AppendRecord(dst, key, value []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = binary.AppendUvarint(dst, uint64(len(value)))
	dst = append(dst, key...)
	return append(dst, value...)
}

// uvarintLen is the length of x's uvarint encoding.
func uvarintLen(x int) int { return (bits.Len64(uint64(x)|1) + 6) / 7 }

// recordLen is the length of a pair's encoding.
func recordLen(klen, vlen int) int { return uvarintLen(klen) + uvarintLen(vlen) + klen + vlen }

// putRecord encodes a pair into b, which must be recordLen long.
func putRecord(b, key, value []byte) {
	i := 0
	if len(key) < 0x80 && len(value) < 0x80 {
		b[0], b[1] = byte(len(key)), byte(len(value))
		i = 2
	} else {
		i = binary.PutUvarint(b, uint64(len(key)))
		i += binary.PutUvarint(b[i:], uint64(len(value)))
	}
	i += copy(b[i:], key)
	copy(b[i:], value)
}

// decodeRecord splits a well-formed encoded record (one this process
// wrote) into key and value, and returns its length.
func decodeRecord(b []byte) (key, value []byte, n int) {
	var kl, vl uint64
	h := 2
	if b[0] < 0x80 && b[1] < 0x80 {
		kl, vl = uint64(b[0]), uint64(b[1])
	} else {
		var n1, n2 int
		kl, n1 = binary.Uvarint(b)
		vl, n2 = binary.Uvarint(b[n1:])
		h = n1 + n2
	}
	k := h + int(kl)
	n = k + int(vl)
	return b[h:k:k], b[k:n:n], n
}

// decodeHeader decodes the header of a well-formed encoded record: its
// length and the key's and value's.
func decodeHeader(b []byte) (h, klen, vlen int) {
	if b[0] < 0x80 && b[1] < 0x80 {
		return 2, int(b[0]), int(b[1])
	}
	kl, n1 := binary.Uvarint(b)
	vl, n2 := binary.Uvarint(b[n1:])
	return n1 + n2, int(kl), int(vl)
}

// RecordWriter writes records to an io.Writer through a buffer. It is not
// safe for concurrent use. Call Flush at the end.
type RecordWriter struct {
	w       io.Writer
	buf     []byte
	n       int64 // bytes written, buffered ones included
	records int64
	err     error

	// Checksum of the bytes since the last takeCRC, when sum is set.
	sum     bool
	crc     uint32
	crcFrom int // buf[:crcFrom] is already in crc
}

// NewRecordWriter returns a writer with a buffer of size bytes
// (DefaultRecordBuffer if size ≤ 0).
func NewRecordWriter(w io.Writer, size int) *RecordWriter {
	if size <= 0 {
		size = DefaultRecordBuffer
	}
	return &RecordWriter{w: w, buf: make([]byte, 0, max(size, 64))}
}

// newRecordWriterBuf makes a writer around a caller's buffer.
func newRecordWriterBuf(w io.Writer, buf []byte, sum bool) *RecordWriter {
	return &RecordWriter{w: w, buf: buf[:0], sum: sum}
}

// Write writes one pair. The writer does not retain key or value. After an
// error every call returns it.
func (w *RecordWriter) Write(key, value []byte) error {
	if w.err != nil {
		return w.err
	}
	n := recordLen(len(key), len(value))
	if n > MaxRecordBytes {
		return fmt.Errorf("record of %d bytes exceeds the limit of %d", n, MaxRecordBytes)
	}
	if len(w.buf)+n > cap(w.buf) {
		if err := w.flush(); err != nil {
			return err
		}
		if n > cap(w.buf) {
			// Too long to buffer: header through the buffer, the rest as is.
			w.buf = binary.AppendUvarint(w.buf, uint64(len(key)))
			w.buf = binary.AppendUvarint(w.buf, uint64(len(value)))
			if err := w.flush(); err != nil {
				return err
			}
			if err := w.direct(key); err != nil {
				return err
			}
			if err := w.direct(value); err != nil {
				return err
			}
			w.n += int64(n)
			w.records++
			return nil
		}
	}
	m := len(w.buf)
	w.buf = w.buf[:m+n]
	putRecord(w.buf[m:], key, value)
	w.n += int64(n)
	w.records++
	return nil
}

// writeRaw writes one record already encoded.
func (w *RecordWriter) writeRaw(rec []byte) error {
	if w.err != nil {
		return w.err
	}
	if len(w.buf)+len(rec) > cap(w.buf) {
		if err := w.flush(); err != nil {
			return err
		}
		if len(rec) > cap(w.buf) {
			if err := w.direct(rec); err != nil {
				return err
			}
			w.n += int64(len(rec))
			w.records++
			return nil
		}
	}
	w.buf = append(w.buf, rec...)
	w.n += int64(len(rec))
	w.records++
	return nil
}

// direct writes b past the (empty) buffer.
func (w *RecordWriter) direct(b []byte) error {
	if w.sum {
		w.crc = crc32.Update(w.crc, castagnoli, b)
	}
	if _, err := w.w.Write(b); err != nil {
		w.err = err
		return err
	}
	return nil
}

func (w *RecordWriter) flush() error {
	if w.err != nil {
		return w.err
	}
	if w.sum {
		w.crc = crc32.Update(w.crc, castagnoli, w.buf[w.crcFrom:])
	}
	w.crcFrom = 0
	if len(w.buf) > 0 {
		if _, err := w.w.Write(w.buf); err != nil {
			w.err = err
			return err
		}
	}
	w.buf = w.buf[:0]
	return nil
}

// takeCRC returns the CRC-32C of the bytes written since the last call and
// starts a new one.
func (w *RecordWriter) takeCRC() uint32 {
	c := crc32.Update(w.crc, castagnoli, w.buf[w.crcFrom:])
	w.crc, w.crcFrom = 0, len(w.buf)
	return c
}

// Flush writes the buffered records to the underlying writer.
func (w *RecordWriter) Flush() error { return w.flush() }

// Records is the number of records written.
func (w *RecordWriter) Records() int64 { return w.records }

// Len is the number of bytes written, buffered ones included.
func (w *RecordWriter) Len() int64 { return w.n }

// RecordReader reads records from an io.Reader through a buffer. It is not
// safe for concurrent use.
type RecordReader struct {
	r    io.Reader
	name string // names the stream in errors
	buf  []byte
	pos  int   // next unread byte in buf
	end  int   // end of the data in buf
	off  int64 // stream offset of buf[pos]
	left int64 // bytes left in the current segment; < 0: no bound
	rerr error // sticky error of r (io.EOF at its end)
	err  error // sticky error of Next

	// The last record read, for merges: pfx holds its key's first 8
	// bytes (see window), for quick comparisons.
	rec, key, value []byte
	pfx             uint64
	done            bool // no current record: at the end, or failed
}

// NewRecordReader returns a reader with a buffer of size bytes
// (DefaultRecordBuffer if size ≤ 0). It grows the buffer for a record that
// does not fit, as the record's bytes arrive.
func NewRecordReader(r io.Reader, size int) *RecordReader {
	if size <= 0 {
		size = DefaultRecordBuffer
	}
	return newRecordReaderBuf(r, "record stream", make([]byte, max(size, 64)))
}

func newRecordReaderBuf(r io.Reader, name string, buf []byte) *RecordReader {
	return &RecordReader{r: r, name: name, buf: buf[:cap(buf)], left: -1}
}

// Next returns the next pair, valid until the next call. At the end of the
// stream it returns io.EOF; a malformed or truncated stream gives an error
// wrapping ErrCorrupt that names the byte offset, and a read error is
// returned wrapped. Errors are sticky.
func (r *RecordReader) Next() (key, value []byte, err error) {
	// The common case: one-byte lengths, the whole record buffered.
	if p := r.pos; r.end-p >= 2 && r.err == nil {
		h0, h1 := r.buf[p], r.buf[p+1]
		n := 2 + int(h0) + int(h1)
		if (h0|h1) < 0x80 && n <= r.end-p && (r.left < 0 || int64(n) <= r.left) {
			k := p + 2 + int(h0)
			r.rec = r.buf[p : p+n : p+n]
			r.key = r.buf[p+2 : k : k]
			r.value = r.buf[k : p+n : p+n]
			r.pfx, _ = arenaWindow(r.buf, p+2, int(h0), 0)
			r.pos += n
			r.off += int64(n)
			if r.left > 0 {
				r.left -= int64(n)
			}
			return r.key, r.value, nil
		}
	}
	return r.next()
}

func (r *RecordReader) next() (key, value []byte, err error) {
	if r.err != nil {
		return nil, nil, r.err
	}
	if r.left == 0 {
		return nil, nil, io.EOF
	}
	if r.end-r.pos < maxHeader && r.rerr == nil {
		need := maxHeader
		if r.left > 0 && r.left < maxHeader {
			need = int(r.left)
		}
		r.fill(need)
	}
	b := r.buf[r.pos:r.end]
	if len(b) == 0 {
		return nil, nil, r.fail(r.endError())
	}
	var kl, vl uint64
	h := 2
	if len(b) >= 2 && b[0] < 0x80 && b[1] < 0x80 {
		kl, vl = uint64(b[0]), uint64(b[1])
	} else {
		var n1, n2 int
		kl, n1 = binary.Uvarint(b)
		if n1 > 0 {
			vl, n2 = binary.Uvarint(b[n1:])
		}
		switch {
		case n1 < 0 || n2 < 0:
			return nil, nil, r.fail(r.corrupt("record header overflows"))
		case n1 == 0 || n2 == 0:
			return nil, nil, r.fail(r.truncated())
		}
		h = n1 + n2
	}
	if kl > MaxRecordBytes || vl > MaxRecordBytes || uint64(h)+kl+vl > MaxRecordBytes {
		return nil, nil, r.fail(r.corrupt(fmt.Sprintf("record header claims %d+%d bytes", kl, vl)))
	}
	n := h + int(kl) + int(vl)
	if r.left >= 0 && int64(n) > r.left {
		return nil, nil, r.fail(r.corrupt("record crosses the end of its segment"))
	}
	if r.end-r.pos < n {
		r.fill(n)
		if r.end-r.pos < n {
			return nil, nil, r.fail(r.truncatedOr())
		}
	}
	p := r.pos
	k := p + h + int(kl)
	r.rec = r.buf[p : p+n : p+n]
	r.key = r.buf[p+h : k : k]
	r.value = r.buf[k : p+n : p+n]
	r.pfx, _ = arenaWindow(r.buf, p+h, int(kl), 0)
	r.pos += n
	r.off += int64(n)
	if r.left > 0 {
		r.left -= int64(n)
	}
	return r.key, r.value, nil
}

// fill reads until n bytes are buffered or the stream ends. It grows the
// buffer, at most doubling it per step, only once it is full of data, so a
// hostile header cannot make it allocate more than the stream holds.
func (r *RecordReader) fill(n int) {
	empty := 0
	for r.end-r.pos < n && r.rerr == nil {
		if r.pos+n > len(r.buf) && r.pos > 0 {
			copy(r.buf, r.buf[r.pos:r.end])
			r.end -= r.pos
			r.pos = 0
		}
		if r.end == len(r.buf) {
			nb := make([]byte, min(n, 2*len(r.buf)))
			r.end = copy(nb, r.buf[r.pos:r.end])
			r.pos = 0
			r.buf = nb
		}
		m, err := r.r.Read(r.buf[r.end:])
		r.end += m
		if err != nil {
			r.rerr = err
		} else if m == 0 {
			if empty++; empty >= 100 {
				r.rerr = io.ErrNoProgress
			}
		}
	}
}

func (r *RecordReader) fail(err error) error {
	r.err = err
	return err
}

// endError is the error for a stream with no bytes left.
func (r *RecordReader) endError() error {
	if r.rerr == io.EOF {
		if r.left > 0 {
			return r.corrupt(fmt.Sprintf("stream ends %d bytes before the end of its segment", r.left))
		}
		return io.EOF
	}
	return fmt.Errorf("%s at byte %d: %w", r.name, r.off, r.rerr)
}

func (r *RecordReader) truncatedOr() error {
	if r.rerr != nil && r.rerr != io.EOF {
		return fmt.Errorf("%s at byte %d: %w", r.name, r.off, r.rerr)
	}
	return r.truncated()
}

func (r *RecordReader) truncated() error {
	return r.corrupt("truncated record")
}

func (r *RecordReader) corrupt(what string) error {
	return fmt.Errorf("%s at byte %d: %s: %w", r.name, r.off, what, ErrCorrupt)
}

// advance moves a merge cursor to its next record; at the end it sets done
// and returns nil.
func (r *RecordReader) advance() error {
	_, _, err := r.Next()
	if err != nil {
		r.done = true
		r.rec, r.key, r.value = nil, nil, nil
		if err == io.EOF {
			return nil
		}
		return err
	}
	return nil
}

// segment bounds the reader to the next length bytes of its stream, for
// reading a spill file one partition at a time.
func (r *RecordReader) segment(length int64) {
	r.left = length
	r.done = false
	r.rec, r.key, r.value = nil, nil, nil
}
