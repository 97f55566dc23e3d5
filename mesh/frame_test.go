package mesh

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"strings"
	"testing"
)

type sample struct {
	Op   string            `msgpack:"op"`
	IDs  [][32]byte        `msgpack:"ids"`
	Meta map[string]string `msgpack:"meta"`
	N    int64             `msgpack:"n"`
	F    float64           `msgpack:"f"`
	B    []byte            `msgpack:"b"`
	Neg  int8              `msgpack:"neg"`
}

func TestMsgRoundTrip(t *testing.T) {
	in := sample{Op: "get", IDs: [][32]byte{{1}, {2}}, Meta: map[string]string{"a": strings.Repeat("x", 300)}, N: -1 << 40, F: 2.5, B: make([]byte, 70000), Neg: -5}
	var buf bytes.Buffer
	if err := WriteMsg(&buf, in); err != nil {
		t.Fatal(err)
	}
	var out sample
	if err := ReadMsg(&buf, &out, 1<<20); err != nil {
		t.Fatal(err)
	}
	if out.Op != in.Op || len(out.IDs) != 2 || out.IDs[1] != in.IDs[1] || out.Meta["a"] != in.Meta["a"] || out.N != in.N || len(out.B) != 70000 || out.Neg != -5 {
		t.Fatalf("round trip: %+v", out)
	}
}

func frame(body []byte) *bytes.Reader {
	hdr := make([]byte, 4)
	binary.BigEndian.PutUint32(hdr, uint32(len(body)))
	return bytes.NewReader(append(hdr, body...))
}

func TestReadMsgRejectsHostileHeaders(t *testing.T) {
	deep := bytes.Repeat([]byte{0x91}, 1000)
	deep = append(deep, 0x01)
	cases := map[string][]byte{
		"huge array":       {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},
		"huge map":         {0xdf, 0x7f, 0xff, 0xff, 0xff},
		"huge string":      {0xdb, 0xff, 0xff, 0xff, 0xf0, 'a'},
		"huge bin":         {0x81, 0xa1, 'b', 0xc6, 0x7f, 0xff, 0xff, 0xff},
		"truncated":        {0x82, 0xa2, 'o', 'p'},
		"reserved byte":    {0xc1},
		"deep nesting":     deep,
		"trailing garbage": {0x01, 0x02},
	}
	for name, body := range cases {
		var v sample
		if err := ReadMsg(frame(body), &v, 1<<20); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	var v sample
	if err := ReadMsg(frame(make([]byte, 100)), &v, 50); err == nil {
		t.Error("over-limit message accepted")
	}
}

func FuzzReadMsg(f *testing.F) {
	var buf bytes.Buffer
	WriteMsg(&buf, sample{Op: "x", IDs: [][32]byte{{3}}, Meta: map[string]string{"k": "v"}})
	f.Add(buf.Bytes()[4:])
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		var v sample
		ReadMsg(frame(body), &v, 1<<20) // must not panic or allocate wildly
	})
}

// wide is a message type with a large element: 1 byte on the wire (a nil)
// decodes into a 200-byte struct.
type wide struct {
	Items []struct {
		A, B, C, D, E string
		F             [120]byte
	} `msgpack:"items"`
}

// allocated returns the bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestReadMsgBoundsAllocation: a hostile array header whose elements are
// one byte each on the wire must not make the decoder allocate far more
// than the frame (it was ~100× the frame size); honest messages of the same
// type and size still decode.
func TestReadMsgBoundsAllocation(t *testing.T) {
	const n = 1 << 16
	body := []byte{0x81, 0xa5, 'i', 't', 'e', 'm', 's', 0xdd, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(body[8:], n)
	body = append(body, bytes.Repeat([]byte{0xc0}, n)...)
	var v wide
	got := allocated(func() { ReadMsg(frame(body), &v, 1<<20) })
	if limit := uint64(decodeFactor*len(body) + decodeSlack + 2*len(body)); got > limit {
		t.Fatalf("a %d-byte hostile frame made ReadMsg allocate %d bytes (%.0f×), want at most %d", len(body), got, float64(got)/float64(len(body)), limit)
	}

	var honest wide
	honest.Items = make([]struct {
		A, B, C, D, E string
		F             [120]byte
	}, 200)
	var buf bytes.Buffer
	WriteMsg(&buf, honest)
	if err := ReadMsg(&buf, &v, 1<<20); err != nil || len(v.Items) != 200 {
		t.Fatalf("honest message: %v, %d items", err, len(v.Items))
	}
}
