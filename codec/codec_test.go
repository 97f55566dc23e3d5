package codec

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

func TestForPath(t *testing.T) {
	for path, want := range map[string]Codec{
		"/a/b.gz": Gzip, "/a/B.GZ": Gzip, "/x.bz2": Bzip2, "/x.zst": Zstd,
		"/x.txt": None, "/x": None, "/d.gz/x": None, "/x.gz.txt": None, "/x.tar.gz": Gzip,
	} {
		if got := ForPath(path); got != want {
			t.Errorf("ForPath(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	for s, want := range map[string]Codec{
		"": None, "none": None, "gzip": Gzip, "gz": Gzip, "zstd": Zstd, "zst": Zstd,
		"org.apache.hadoop.io.compress.GzipCodec":      Gzip,
		"org.apache.hadoop.io.compress.ZStandardCodec": Zstd,
	} {
		if got, err := Parse(s); err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", s, got, err, want)
		}
	}
	for _, s := range []string{"lz4", "bzip2", "snappy"} {
		if _, err := Parse(s); !errors.Is(err, ErrUnknown) {
			t.Errorf("Parse(%q): err %v, want ErrUnknown", s, err)
		}
	}
}

// TestFilesOfTheTools reads files that gzip(1), bzip2(1) and zstd(1) wrote.
func TestFilesOfTheTools(t *testing.T) {
	want, err := os.ReadFile("testdata/lines.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lines.txt.gz", "lines.txt.bz2", "lines.txt.zst", "lines.txt"} {
		f, err := os.Open("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewReader(ForPath(name), f)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		f.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read %q, %v; want %q", name, got, err, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	data := []byte(strings.Repeat("some words that repeat\n", 50000))
	for _, c := range []Codec{Gzip, Zstd, None} {
		var buf bytes.Buffer
		w, err := NewWriter(c, &buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if c != None && buf.Len() >= len(data)/10 {
			t.Errorf("%s: %d bytes compressed to %d", c, len(data), buf.Len())
		}
		r, err := NewReader(c, &buf)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: round trip gave %d bytes, %v", c, len(got), err)
		}
	}
}

// TestConcatenatedGzip: `cat a.gz b.gz` is a valid gzip file of both.
func TestConcatenatedGzip(t *testing.T) {
	var buf bytes.Buffer
	for _, s := range []string{"one\n", "two\n"} {
		w, _ := NewWriter(Gzip, &buf)
		w.Write([]byte(s))
		w.Close()
	}
	r, _ := NewReader(Gzip, &buf)
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "one\ntwo\n" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// TestCorrupt: truncated or garbled streams read as *CorruptError, and an
// error of the underlying reader is passed on as it is.
func TestCorrupt(t *testing.T) {
	for _, name := range []string{"lines.txt.gz", "lines.txt.bz2", "lines.txt.zst"} {
		good, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		garbled := bytes.Clone(good)
		for i := len(garbled) / 3; i < len(garbled)*2/3; i++ {
			garbled[i] ^= 0x5a
		}
		cases := map[string][]byte{"truncated": good[:len(good)/2], "garbled": garbled}
		if ForPath(name) != Zstd { // zero zstd frames are an empty stream
			cases["empty"] = nil
		}
		for what, b := range cases {
			var err error
			r, err := NewReader(ForPath(name), bytes.NewReader(b))
			if err == nil {
				_, err = io.ReadAll(r)
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Errorf("%s %s: err %v, want a CorruptError", what, name, err)
			}
		}
		boom := errors.New("disk on fire")
		r, err := NewReader(ForPath(name), io.MultiReader(bytes.NewReader(good[:len(good)/2]), errReader{boom}))
		if err == nil {
			_, err = io.ReadAll(r)
		}
		if !errors.Is(err, boom) {
			t.Errorf("%s: err %v, want the reader's", name, err)
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
