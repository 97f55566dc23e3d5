// Package codec is Shoal's compression of files and streams: which codec a
// file's name says it is in (".gz", ".bz2", ".zst"), decompressing readers
// for job input, compressing writers for job output, and the block codec of
// the shuffle's map output segments. It imports nothing of Shoal's.
//
// A compressed input file cannot be cut into splits: its bytes make sense
// only from the start of the stream. A runner reads each compressed input
// file whole, in one map task (as Hadoop does for gzip; Shoal does it for
// bzip2 and zstd too).
package codec

import (
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Codec names a compression format. The zero Codec is None.
type Codec string

// The codecs.
const (
	None  Codec = ""
	Gzip  Codec = "gzip"
	Bzip2 Codec = "bzip2"
	Zstd  Codec = "zstd"
)

// ErrUnknown is returned (wrapped) by Parse for a name it does not know.
var ErrUnknown = errors.New("unknown compression codec")

// ForPath returns the codec a file's name says it is in: Gzip for ".gz",
// Bzip2 for ".bz2", Zstd for ".zst", else None. The match is on the name's
// last extension, case-insensitively.
func ForPath(path string) Codec {
	i := strings.LastIndexByte(path, '.')
	if i < 0 || strings.ContainsRune(path[i:], '/') {
		return None
	}
	switch strings.ToLower(path[i:]) {
	case ".gz":
		return Gzip
	case ".bz2":
		return Bzip2
	case ".zst":
		return Zstd
	}
	return None
}

// Ext is the file name extension of c's files, with its dot ("" for None).
func (c Codec) Ext() string {
	switch c {
	case Gzip:
		return ".gz"
	case Bzip2:
		return ".bz2"
	case Zstd:
		return ".zst"
	}
	return ""
}

// Parse returns the output codec s names: "gzip" (or "gz"), "zstd" (or
// "zst"), or "none" / "" for None, and Hadoop's codec class names
// (org.apache.hadoop.io.compress.GzipCodec, DefaultCodec, ZStandardCodec).
// Bzip2 is not offered for output: Go has no bzip2 compressor.
func Parse(s string) (Codec, error) {
	switch strings.TrimSpace(s) {
	case "", "none":
		return None, nil
	case "gzip", "gz", "org.apache.hadoop.io.compress.GzipCodec", "org.apache.hadoop.io.compress.DefaultCodec":
		return Gzip, nil
	case "zstd", "zst", "org.apache.hadoop.io.compress.ZStandardCodec":
		return Zstd, nil
	case "bzip2", "bz2", "org.apache.hadoop.io.compress.BZip2Codec":
		return None, fmt.Errorf("%w %q: bzip2 is read but not written; use gzip or zstd", ErrUnknown, s)
	}
	return None, fmt.Errorf("%w %q (want gzip, zstd or none)", ErrUnknown, s)
}

// CorruptError is a compressed stream that does not decode.
type CorruptError struct {
	Codec Codec
	Err   error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s data is corrupt or truncated (%v)", e.Codec, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// NewReader returns a reader of r's bytes decompressed with c (r itself,
// wrapped in a no-op Close, for None). A stream that does not decode reads
// as a *CorruptError; a read error of r itself is passed on as it is.
// Gzip streams may hold several members (concatenated .gz files), as
// gzip(1) allows. Close releases the decoder, not r.
func NewReader(c Codec, r io.Reader) (io.ReadCloser, error) {
	src := &srcReader{r: r}
	switch c {
	case None:
		return io.NopCloser(r), nil
	case Gzip:
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, src.wrap(c, err)
		}
		return &decoder{c: c, r: zr, src: src, close: zr.Close}, nil
	case Bzip2:
		return &decoder{c: c, r: bzip2.NewReader(src), src: src, close: func() error { return nil }}, nil
	case Zstd:
		zr, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, src.wrap(c, err)
		}
		return &decoder{c: c, r: zr, src: src, close: func() error { zr.Close(); return nil }}, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknown, string(c))
}

// srcReader remembers the first error of the compressed stream's reader,
// so that a decoder's error caused by it is told apart from corrupt data.
type srcReader struct {
	r   io.Reader
	err error
}

func (s *srcReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

func (s *srcReader) wrap(c Codec, err error) error {
	switch {
	case s.err != nil:
		return s.err
	case err == io.EOF:
		return &CorruptError{Codec: c, Err: io.ErrUnexpectedEOF}
	}
	return &CorruptError{Codec: c, Err: err}
}

type decoder struct {
	c     Codec
	r     io.Reader
	src   *srcReader
	close func() error
}

func (d *decoder) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF {
		err = d.src.wrap(d.c, err)
	}
	return n, err
}

func (d *decoder) Close() error { return d.close() }

// NewWriter returns a writer that compresses into w with c (Gzip or Zstd;
// for None, w in a no-op Close). Close flushes the stream's end; it does
// not close w.
func NewWriter(c Codec, w io.Writer) (io.WriteCloser, error) {
	switch c {
	case None:
		return nopWriteCloser{w}, nil
	case Gzip:
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	}
	return nil, fmt.Errorf("%w %q for output", ErrUnknown, string(c))
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
