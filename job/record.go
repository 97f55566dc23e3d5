package job

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// InputFormat says how an input file is cut into (key, value) records.
// Both formats are line based: a line ends at "\n", which is not part of
// the record; the last line of a file need not end in "\n"; a file ending in
// "\n" has no empty record after it; empty lines are records. Only "\n" is
// stripped: a "\r" before it (a CRLF file) stays at the end of the record,
// so records are exactly the bytes between newlines and no input byte other
// than "\n" is lost or changed.
type InputFormat int

const (
	// TextInput: the key is the byte offset of the line's first byte in its
	// file, as decimal ASCII; the value is the line. Hadoop's
	// TextInputFormat. The zero InputFormat.
	TextInput InputFormat = iota
	// KeyValueInput: the line is split at its first tab, the key before it
	// and the value after it; a line with no tab is all key, with an empty
	// value. Hadoop's KeyValueTextInputFormat.
	KeyValueInput
)

// String returns the format's name as ParseInputFormat takes it.
func (f InputFormat) String() string {
	switch f {
	case TextInput:
		return "text"
	case KeyValueInput:
		return "keyvalue"
	}
	return "InputFormat(" + strconv.Itoa(int(f)) + ")"
}

// ParseInputFormat returns the format named s: "text" or "keyvalue" (also
// "kv").
func ParseInputFormat(s string) (InputFormat, error) {
	switch s {
	case "text":
		return TextInput, nil
	case "keyvalue", "kv":
		return KeyValueInput, nil
	}
	return 0, fmt.Errorf("unknown input format %q (want text or keyvalue)", s)
}

func (f InputFormat) validate() error {
	if f != TextInput && f != KeyValueInput {
		return fmt.Errorf("unknown input format %d", int(f))
	}
	return nil
}

// MaxLineLength is the longest line ReadRecords accepts, in bytes, not
// counting its "\n".
const MaxLineLength = 64 << 20

// ErrLineTooLong is returned (wrapped) by ReadRecords for a line longer than
// MaxLineLength.
var ErrLineTooLong = errors.New("line too long")

// readBufferSize is ReadRecords' initial buffer; it grows to hold the longest
// line seen.
const readBufferSize = 1 << 20

// ReadRecords calls fn for each record of r under format f, in order.
// baseOffset is the byte offset of r's first byte within its file: TextInput
// keys are file offsets, so a reader of a split that starts mid-file passes
// the split's offset (it must start at a line boundary). The key and value
// slices are valid only during the call to fn and must not be modified.
//
// ReadRecords reads through one buffer that grows to hold the longest line;
// it does not allocate per record. A line longer than MaxLineLength is an
// error wrapping ErrLineTooLong, reported before the line is held in
// memory whole. An error from fn stops the read and is returned as is; an
// error from r is wrapped.
func ReadRecords(r io.Reader, f InputFormat, baseOffset int64, fn func(key, value []byte) error) error {
	return readRecords(r, f, baseOffset, MaxLineLength, readBufferSize, fn)
}

// RecordReader reads records as ReadRecords does, keeping its buffer from
// one input to the next: a map task over thousands of small files (a
// packed split) allocates and clears it once, not once per file (a 1 MiB
// buffer per 1 KB file was most of such a task's time).
type RecordReader struct {
	// Expect, if positive, is how many bytes the reader expects to read
	// over all its inputs: its first buffer is then Expect+1 bytes (at
	// least minReadBuffer) when that is less than the 1 MiB it starts with
	// otherwise. A map over a one-line file need not allocate and clear
	// 1 MiB. The buffer still grows to hold the longest line, so a wrong
	// Expect costs only reads, never records.
	Expect int64

	buf []byte
}

// minReadBuffer is the smallest first buffer of a RecordReader.
const minReadBuffer = 4 << 10

// Read calls fn for each record of r, as ReadRecords does.
func (rr *RecordReader) Read(r io.Reader, f InputFormat, baseOffset int64, fn func(key, value []byte) error) error {
	if rr.buf == nil {
		size := readBufferSize
		if rr.Expect > 0 && rr.Expect < readBufferSize {
			size = max(int(rr.Expect)+1, minReadBuffer)
		}
		rr.buf = make([]byte, size)
	}
	var err error
	rr.buf, err = scanRecords(r, f, baseOffset, MaxLineLength, rr.buf, fn)
	return err
}

func readRecords(r io.Reader, f InputFormat, baseOffset int64, maxLine, bufSize int, fn func(key, value []byte) error) error {
	_, err := scanRecords(r, f, baseOffset, maxLine, make([]byte, min(bufSize, maxLine+1)), fn)
	return err
}

// scanRecords reads through buf, growing it to hold the longest line, and
// returns it.
func scanRecords(r io.Reader, f InputFormat, baseOffset int64, maxLine int, buf []byte, fn func(key, value []byte) error) ([]byte, error) {
	if err := f.validate(); err != nil {
		return buf, err
	}
	var (
		start   int // buf[start:end] is unread
		end     int
		scanned int          // buf[start:start+scanned] holds no '\n'
		off     = baseOffset // file offset of buf[start]
		keyBuf  = make([]byte, 0, 20)
		eof     bool
		empty   int // consecutive (0, nil) reads
	)
	record := func(line []byte) error {
		switch f {
		case KeyValueInput:
			if i := bytes.IndexByte(line, '\t'); i >= 0 {
				return fn(line[:i:i], line[i+1:])
			}
			return fn(line, line[len(line):])
		default:
			keyBuf = strconv.AppendInt(keyBuf[:0], off, 10)
			return fn(keyBuf, line)
		}
	}
	for {
		if i := bytes.IndexByte(buf[start+scanned:end], '\n'); i >= 0 {
			n := scanned + i // line length
			if n > maxLine {
				return buf, fmt.Errorf("line at offset %d: %w (more than %d bytes)", off, ErrLineTooLong, maxLine)
			}
			if err := record(buf[start : start+n : start+n]); err != nil {
				return buf, err
			}
			start += n + 1
			off += int64(n + 1)
			scanned = 0
			continue
		}
		scanned = end - start
		if scanned > maxLine {
			return buf, fmt.Errorf("line at offset %d: %w (more than %d bytes)", off, ErrLineTooLong, maxLine)
		}
		if eof {
			if scanned > 0 {
				return buf, record(buf[start:end:end])
			}
			return buf, nil
		}
		// Make room: slide the partial line to the front, and grow the
		// buffer if the line fills it.
		if start > 0 {
			copy(buf, buf[start:end])
			end -= start
			start = 0
		}
		if end == len(buf) {
			nb := make([]byte, min(2*len(buf), maxLine+1))
			copy(nb, buf[:end])
			buf = nb
		}
		n, err := r.Read(buf[end:])
		end += n
		switch {
		case err == io.EOF:
			eof = true
		case err != nil:
			return buf, fmt.Errorf("read input: %w", err)
		case n == 0:
			if empty++; empty >= 100 {
				return buf, fmt.Errorf("read input: %w", io.ErrNoProgress)
			}
			continue
		}
		empty = 0
	}
}

// AppendRecord appends the output record of (key, value) to dst and returns
// the extended slice: key, "\t", value, "\n", or key, "\n" when value is
// empty: the TextOutput format (see AppendOutput), Shoal's default for
// reduce output and map-only output.
// Keys and values are written as they are: a key holding a tab, or either
// holding a newline, reads back differently.
func AppendRecord(dst, key, value []byte) []byte {
	dst = append(dst, key...)
	if len(value) > 0 {
		dst = append(dst, '\t')
		dst = append(dst, value...)
	}
	return append(dst, '\n')
}

// OutputFormat says how output pairs (of reduce tasks, and of map tasks in
// a MapOnly job) become bytes.
type OutputFormat int

const (
	// TextOutput writes key, "\t", value, "\n", or key, "\n" when the value
	// is empty: AppendRecord. Hadoop's TextOutputFormat. The zero
	// OutputFormat.
	TextOutput OutputFormat = iota
	// RawOutput writes key, value, "\n", with nothing between key and
	// value: for records whose key is a fixed-width prefix of the line, such
	// as TeraSort's, so that a job that splits a line into (prefix, rest)
	// writes the line back unchanged.
	RawOutput
)

// String returns the format's name: "text" or "raw".
func (f OutputFormat) String() string {
	switch f {
	case TextOutput:
		return "text"
	case RawOutput:
		return "raw"
	}
	return "OutputFormat(" + strconv.Itoa(int(f)) + ")"
}

func (f OutputFormat) validate() error {
	if f != TextOutput && f != RawOutput {
		return fmt.Errorf("unknown output format %d", int(f))
	}
	return nil
}

// AppendOutput appends the output record of (key, value) under format f to
// dst and returns the extended slice: AppendRecord for TextOutput; key,
// value, "\n" for RawOutput. It panics on an unknown format, which
// Job.Validate rejects. It does not allocate beyond growing dst.
func AppendOutput(dst []byte, f OutputFormat, key, value []byte) []byte {
	switch f {
	case TextOutput:
		return AppendRecord(dst, key, value)
	case RawOutput:
		dst = append(dst, key...)
		dst = append(dst, value...)
		return append(dst, '\n')
	}
	panic(fmt.Sprintf("job: AppendOutput: unknown output format %d", int(f)))
}
