package mesh

import (
	"bytes"
	"encoding/binary"
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
