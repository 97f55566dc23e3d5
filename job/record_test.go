package job

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type rec struct{ k, v string }

// collect reads every record of in with readRecords, copying them.
func collect(t *testing.T, r io.Reader, f InputFormat, base int64, maxLine, bufSize int) ([]rec, error) {
	t.Helper()
	var got []rec
	err := readRecords(r, f, base, maxLine, bufSize, func(k, v []byte) error {
		got = append(got, rec{string(k), string(v)})
		return nil
	})
	return got, err
}

func equalRecs(a, b []rec) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// readers gives in through several reader shapes and buffer sizes, so line
// boundaries fall everywhere relative to reads and buffer ends.
func readers(in string) map[string]func() (io.Reader, int) {
	m := map[string]func() (io.Reader, int){
		"default":      func() (io.Reader, int) { return strings.NewReader(in), readBufferSize },
		"onebyte":      func() (io.Reader, int) { return iotest.OneByteReader(strings.NewReader(in)), readBufferSize },
		"dataerr":      func() (io.Reader, int) { return iotest.DataErrReader(strings.NewReader(in)), readBufferSize },
		"half/dataerr": func() (io.Reader, int) { return iotest.HalfReader(iotest.DataErrReader(strings.NewReader(in))), 3 },
	}
	for size := 1; size <= 9; size++ {
		m[fmt.Sprintf("buf%d", size)] = func() (io.Reader, int) { return strings.NewReader(in), size }
	}
	return m
}

func TestReadRecordsText(t *testing.T) {
	tests := []struct {
		name string
		in   string
		base int64
		want []rec
	}{
		{"empty", "", 0, nil},
		{"one newline", "\n", 0, []rec{{"0", ""}}},
		{"last line without newline", "ab\ncd", 0, []rec{{"0", "ab"}, {"3", "cd"}}},
		{"trailing newline gives no empty record", "ab\ncd\n", 0, []rec{{"0", "ab"}, {"3", "cd"}}},
		{"empty lines", "\n\nx\n\n", 0, []rec{{"0", ""}, {"1", ""}, {"2", "x"}, {"4", ""}}},
		{"crlf keeps the cr", "ab\r\ncd\r\n\r\nlast\r", 0, []rec{{"0", "ab\r"}, {"4", "cd\r"}, {"8", "\r"}, {"10", "last\r"}}},
		{"lone cr is not a line end", "a\rb\nc", 0, []rec{{"0", "a\rb"}, {"4", "c"}}},
		{"base offset", "ab\n\ncd", 1 << 40, []rec{{"1099511627776", "ab"}, {"1099511627779", ""}, {"1099511627780", "cd"}}},
		{"tabs are data", "a\tb\n", 0, []rec{{"0", "a\tb"}}},
		{"long lines across buffers", "0123456789abcdef\nxy\n0123456789\n", 7, []rec{{"7", "0123456789abcdef"}, {"24", "xy"}, {"27", "0123456789"}}},
	}
	for _, tt := range tests {
		for rname, mk := range readers(tt.in) {
			r, size := mk()
			got, err := collect(t, r, TextInput, tt.base, 100, size)
			if err != nil {
				t.Fatalf("%s/%s: %v", tt.name, rname, err)
			}
			if !equalRecs(got, tt.want) {
				t.Errorf("%s/%s: got %q, want %q", tt.name, rname, got, tt.want)
			}
		}
	}
}

func TestReadRecordsKeyValue(t *testing.T) {
	in := "k\tv\tw\nnotab\n\tv\nk\t\n\nlast\tx\r"
	want := []rec{{"k", "v\tw"}, {"notab", ""}, {"", "v"}, {"k", ""}, {"", ""}, {"last", "x\r"}}
	for rname, mk := range readers(in) {
		r, size := mk()
		got, err := collect(t, r, KeyValueInput, 12345, 100, size)
		if err != nil {
			t.Fatalf("%s: %v", rname, err)
		}
		if !equalRecs(got, want) {
			t.Errorf("%s: got %q, want %q", rname, got, want)
		}
	}
}

func TestReadRecordsPublicMatchesInternal(t *testing.T) {
	in := strings.Repeat("hello world\n\n", 100000) + "end"
	var n int
	var last rec
	err := ReadRecords(strings.NewReader(in), TextInput, 0, func(k, v []byte) error {
		n++
		last = rec{string(k), string(v)}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := (rec{fmt.Sprint(len(in) - 3), "end"}); n != 200001 || last != want {
		t.Errorf("got %d records, last %q; want 200001, %q", n, last, want)
	}
}

func TestReadRecordsLineTooLong(t *testing.T) {
	const max = 10
	ok := strings.Repeat("x", max)
	long := strings.Repeat("y", max+1)
	for _, in := range []string{long, long + "\n", ok + "\n" + long + "\nz\n", ok + "\n" + long} {
		for rname, mk := range readers(in) {
			r, size := mk()
			var seen []rec
			err := readRecords(r, TextInput, 0, max, size, func(k, v []byte) error {
				seen = append(seen, rec{string(k), string(v)})
				return nil
			})
			if !errors.Is(err, ErrLineTooLong) {
				t.Fatalf("%q/%s: err = %v, want ErrLineTooLong", in, rname, err)
			}
			if strings.HasPrefix(in, ok) {
				if !equalRecs(seen, []rec{{"0", ok}}) {
					t.Errorf("%q/%s: records before the error: %q", in, rname, seen)
				}
				if !strings.Contains(err.Error(), "offset 11") {
					t.Errorf("error does not name the line's offset: %v", err)
				}
			}
		}
	}
	// Exactly max bytes is fine, with or without a newline.
	for _, in := range []string{ok, ok + "\n" + ok + "\n"} {
		for rname, mk := range readers(in) {
			r, size := mk()
			if _, err := collect(t, r, KeyValueInput, 0, max, size); err != nil {
				t.Errorf("%q/%s: %v", in, rname, err)
			}
		}
	}
}

// endless is an io.Reader of n copies of c, without holding them.
type endless struct {
	c byte
	n int64
}

func (e *endless) Read(p []byte) (int, error) {
	if e.n == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), e.n)]
	for i := range p {
		p[i] = e.c
	}
	e.n -= int64(len(p))
	return len(p), nil
}

func TestReadRecordsMaxLineLength(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 64 MiB")
	}
	called := false
	err := ReadRecords(&endless{'x', MaxLineLength + 1}, TextInput, 0, func(k, v []byte) error {
		called = true
		return nil
	})
	if !errors.Is(err, ErrLineTooLong) || called {
		t.Fatalf("err = %v, called = %v; want ErrLineTooLong before any record", err, called)
	}
}

func TestReadRecordsErrors(t *testing.T) {
	boom := errors.New("boom")
	err := ReadRecords(strings.NewReader("a\nb\nc\n"), TextInput, 0, func(k, v []byte) error {
		if string(v) == "b" {
			return boom
		}
		return nil
	})
	if err != boom {
		t.Errorf("fn error: got %v, want it returned as is", err)
	}

	r := io.MultiReader(strings.NewReader("a\nb"), iotest.ErrReader(boom))
	var got []rec
	err = ReadRecords(r, TextInput, 0, func(k, v []byte) error {
		got = append(got, rec{string(k), string(v)})
		return nil
	})
	if !errors.Is(err, boom) || !equalRecs(got, []rec{{"0", "a"}}) {
		t.Errorf("read error: got %v after %q", err, got)
	}

	err = ReadRecords(strings.NewReader("a"), InputFormat(7), 0, func(k, v []byte) error { return nil })
	if err == nil {
		t.Error("unknown input format: no error")
	}
}

// stuck returns (0, nil) forever.
type stuck struct{}

func (stuck) Read([]byte) (int, error) { return 0, nil }

func TestReadRecordsNoProgress(t *testing.T) {
	err := ReadRecords(stuck{}, TextInput, 0, func(k, v []byte) error { return nil })
	if !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("got %v, want io.ErrNoProgress", err)
	}
}

func TestReadRecordsAllocations(t *testing.T) {
	small := []byte(strings.Repeat("some words here\n", 10))
	large := []byte(strings.Repeat("some words here\n", 10000))
	for _, f := range []InputFormat{TextInput, KeyValueInput} {
		allocs := func(in []byte) float64 {
			return testing.AllocsPerRun(5, func() {
				r := bytes.NewReader(in)
				if err := ReadRecords(r, f, 1<<33, func(k, v []byte) error { return nil }); err != nil {
					t.Fatal(err)
				}
			})
		}
		if a, b := allocs(small), allocs(large); a != b {
			t.Errorf("%v: %v allocations for 10 records, %v for 10000: want no allocation per record", f, a, b)
		}
	}
}

func TestInputFormatNames(t *testing.T) {
	for _, f := range []InputFormat{TextInput, KeyValueInput} {
		got, err := ParseInputFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseInputFormat(%q) = %v, %v", f.String(), got, err)
		}
	}
	if f, err := ParseInputFormat("kv"); err != nil || f != KeyValueInput {
		t.Errorf("ParseInputFormat(kv) = %v, %v", f, err)
	}
	if _, err := ParseInputFormat("csv"); err == nil {
		t.Error("ParseInputFormat(csv): no error")
	}
	if s := InputFormat(9).String(); s != "InputFormat(9)" {
		t.Errorf("String of an unknown format: %q", s)
	}
}

func TestAppendRecord(t *testing.T) {
	tests := []struct{ k, v, want string }{
		{"k", "v", "k\tv\n"},
		{"k", "", "k\n"},
		{"", "v", "\tv\n"},
		{"", "", "\n"},
		{"a b", "c\td", "a b\tc\td\n"},
	}
	for _, tt := range tests {
		if got := string(AppendRecord([]byte("pre:"), []byte(tt.k), []byte(tt.v))); got != "pre:"+tt.want {
			t.Errorf("AppendRecord(%q, %q) = %q, want %q", tt.k, tt.v, got, "pre:"+tt.want)
		}
	}
	// Records read back through KeyValueInput when keys hold no tab.
	var out []byte
	out = AppendRecord(out, []byte("x"), []byte("1\t2"))
	out = AppendRecord(out, []byte("y"), nil)
	got, err := collect(t, bytes.NewReader(out), KeyValueInput, 0, 100, 100)
	if err != nil || !equalRecs(got, []rec{{"x", "1\t2"}, {"y", ""}}) {
		t.Errorf("read back: %q, %v", got, err)
	}
}

func BenchmarkReadRecords(b *testing.B) {
	in := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog\n", 1<<16))
	for _, f := range []InputFormat{TextInput, KeyValueInput} {
		b.Run(f.String(), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				if err := ReadRecords(bytes.NewReader(in), f, 0, func(k, v []byte) error { return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRecordReaderReuse: one RecordReader over many inputs (a packed
// split's files) gives each input's records exactly as ReadRecords does,
// also after its buffer grew for a line longer than it, and after an input
// that ended without a newline or failed; with Expect, its first buffer is
// small, and the records the same.
func TestRecordReaderReuse(t *testing.T) {
	for _, c := range []struct {
		expect int64
		first  int // the first buffer's size
	}{{0, readBufferSize}, {6, minReadBuffer}, {100 << 10, 100<<10 + 1}, {4 * readBufferSize, readBufferSize}} {
		t.Run(fmt.Sprintf("expect=%d", c.expect), func(t *testing.T) {
			testRecordReaderReuse(t, RecordReader{Expect: c.expect}, c.first)
		})
	}
}

func testRecordReaderReuse(t *testing.T, rr RecordReader, first int) {
	inputs := []struct {
		in   string
		f    InputFormat
		base int64
	}{
		{"a b\nc\n", TextInput, 0},
		{strings.Repeat("x", 3*readBufferSize) + "\nshort\n", TextInput, 100},
		{"k\tv\nno tab\n", KeyValueInput, 0},
		{"tail without newline", TextInput, 7},
		{"", TextInput, 0},
		{"last\n", TextInput, 0},
	}
	for i, in := range inputs {
		var want, got []rec
		if err := ReadRecords(strings.NewReader(in.in), in.f, in.base, func(k, v []byte) error {
			want = append(want, rec{string(k), string(v)})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := rr.Read(strings.NewReader(in.in), in.f, in.base, func(k, v []byte) error {
			got = append(got, rec{string(k), string(v)})
			return nil
		}); err != nil {
			t.Fatalf("input %d: %v", i, err)
		}
		if !equalRecs(got, want) {
			t.Fatalf("input %d: reused reader gave %d records, want %d", i, len(got), len(want))
		}
		if i == 0 && len(rr.buf) != first {
			t.Fatalf("first buffer of %d bytes, want %d", len(rr.buf), first)
		}
		if i == 2 {
			// A read that fails leaves nothing behind for the next one.
			if err := rr.Read(iotest.TimeoutReader(strings.NewReader("half a li")), TextInput, 0, func(k, v []byte) error { return nil }); err == nil {
				t.Fatal("a failing reader read without error")
			}
		}
	}
}
