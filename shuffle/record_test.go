package shuffle

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

func TestRecordRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	pairs := randomPairs(rng, 1<<20, 3000)
	pairs = append(pairs, pair{nil, nil}, pair{bytes.Repeat([]byte("k"), 300), bytes.Repeat([]byte("v"), 70000)})
	var buf bytes.Buffer
	w := NewRecordWriter(&buf, 100) // records longer than the buffer go straight through
	for _, p := range pairs {
		if err := w.Write(p.key, p.value); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Records() != int64(len(pairs)) || w.Len() != int64(buf.Len()) || !bytes.Equal(buf.Bytes(), encode(pairs)) {
		t.Fatalf("writer: %d records, %d bytes; buffer %d bytes", w.Records(), w.Len(), buf.Len())
	}
	// Readers with tiny buffers and one-byte reads still see every record.
	for _, r := range []io.Reader{bytes.NewReader(buf.Bytes()), iotest.OneByteReader(bytes.NewReader(buf.Bytes())), iotest.DataErrReader(bytes.NewReader(buf.Bytes()))} {
		rr := NewRecordReader(r, 1)
		for i, p := range pairs {
			k, v, err := rr.Next()
			if err != nil || !bytes.Equal(k, p.key) || !bytes.Equal(v, p.value) {
				t.Fatalf("record %d: %q %q %v", i, k, v, err)
			}
		}
		if _, _, err := rr.Next(); err != io.EOF {
			t.Fatalf("after the last record: %v", err)
		}
	}
}

func TestRecordReaderCorrupt(t *testing.T) {
	good := encode([]pair{{[]byte("key"), []byte("value")}, {[]byte("k2"), bytes.Repeat([]byte("v"), 200)}})
	// Every truncation inside a record is an error, never a panic.
	for n := 1; n < len(good); n++ {
		if n == 10 { // the end of the first record
			continue
		}
		rr := NewRecordReader(bytes.NewReader(good[:n]), 0)
		var err error
		for err == nil {
			_, _, err = rr.Next()
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("cut at %d: %v", n, err)
		}
	}
	for name, b := range map[string][]byte{
		"overflow":   {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00},
		"huge claim": append(AppendRecord(nil, nil, nil)[:0], 0x80, 0x80, 0x80, 0x80, 0x08, 0x00, 'x'),
		"short":      {0x05, 0x00, 'a'},
	} {
		rr := NewRecordReader(bytes.NewReader(b), 0)
		if _, _, err := rr.Next(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
		// Errors are sticky.
		if _, _, err := rr.Next(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s again: %v", name, err)
		}
	}
	// A claim of 100 MB with a few bytes behind it does not allocate it.
	claim := append([]byte{0x80, 0x80, 0x80, 0x32, 0x00}, "abc"...)
	allocs := testing.AllocsPerRun(1, func() {
		rr := NewRecordReader(bytes.NewReader(claim), 64)
		rr.Next()
	})
	if allocs > 20 {
		t.Fatalf("%v allocations", allocs)
	}
	// Read errors are returned, wrapped.
	rr := NewRecordReader(iotest.ErrReader(io.ErrClosedPipe), 0)
	if _, _, err := rr.Next(); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("read error: %v", err)
	}
}

func FuzzRecordReader(f *testing.F) {
	f.Add(encode([]pair{{[]byte("a"), []byte("b")}, {nil, nil}}))
	f.Add([]byte{0x80})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		rr := NewRecordReader(bytes.NewReader(b), 16)
		var got []pair
		for {
			k, v, err := rr.Next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			got = append(got, pair{bytes.Clone(k), bytes.Clone(v)})
		}
		// What was read re-encodes to a stream that reads the same.
		again := readAll(t, bytes.NewReader(encode(got)))
		if len(again) != len(got) {
			t.Fatalf("%d records, %d after re-encoding", len(got), len(again))
		}
		for i := range got {
			if cmpPair(got[i], again[i]) != 0 {
				t.Fatalf("record %d changed", i)
			}
		}
	})
}

func TestRecordWriterError(t *testing.T) {
	w := NewRecordWriter(failWriter{}, 64)
	var err error
	for i := 0; err == nil && i < 100; i++ {
		err = w.Write([]byte("key"), []byte("value"))
	}
	if err == nil {
		err = w.Flush()
	}
	if !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("write: %v", err)
	}
	if err := w.Write(nil, nil); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("after an error: %v", err)
	}
	if err := w.Flush(); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("flush after an error: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }
