package blockstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/mesh"
	"shoal.dev/shoal/mesh/meshtest"
)

// sumsOf computes data's chunk sums as block id's, as a writer does when
// it hashes a block it received.
func sumsOf(data []byte, id ID) *blockSums {
	h := newBlockHasher()
	h.Write(data)
	return h.sums(id)
}

// flipAt yields r's bytes with the byte at off flipped: damage in transit.
type flipAt struct {
	r   io.Reader
	off int64
	pos int64
}

func (f *flipAt) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.off >= f.pos && f.off < f.pos+int64(n) {
		p[f.off-f.pos] ^= 1
	}
	f.pos += int64(n)
	return n, err
}

// protocolPair serves a store on node "b" to a client on node "a".
func protocolPair(t *testing.T) (*Client, *Store, *meshtest.Node) {
	t.Helper()
	net := meshtest.New()
	a, _ := net.Add("a")
	b, _ := net.Add("b")
	t.Cleanup(func() { a.Close(); b.Close() })
	store := newTestStore(t)
	b.Handle(Protocol, NewServer(store, quietLog()).Handle)
	return NewClient(a), store, a
}

// tmpLeft lists the files left in the store's tmp dir.
func tmpLeft(t *testing.T, s *Store) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// A put that carries its block's chunk sums is checked against them as it
// arrives, not hashed: the receiver keeps them as the block's sidecar and
// counts the block; a byte flipped in transit is refused, naming its
// chunk, and nothing is stored.
func TestPutWithSums(t *testing.T) {
	cl, store, _ := protocolPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	data := textOf(3, 5*SumChunk+1234) // a short last chunk
	id := Sum(data)
	sums := sumsOf(data, id)

	for _, off := range []int64{0, 3*SumChunk + 7, int64(len(data)) - 1} {
		err := cl.put(ctx, "b", id, &flipAt{r: bytes.NewReader(data), off: off}, int64(len(data)), 3, sums)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "damaged in transit") {
			t.Fatalf("byte %d flipped in transit: %v", off, err)
		}
		chunk := off / SumChunk * SumChunk
		if want := "b refused " + id.Short() + ": bytes " + strconv.FormatInt(chunk, 10) + " to "; !strings.Contains(err.Error(), want) {
			t.Fatalf("byte %d flipped: error %q does not say %q", off, err, want)
		}
		if store.Has(id) || store.readSums(id, int64(len(data))) != nil || len(tmpLeft(t, store)) != 0 {
			t.Fatalf("byte %d flipped: something was stored (block %v, tmp %v)", off, store.Has(id), tmpLeft(t, store))
		}
	}
	if store.Summed.Load() != 0 || store.Written.Load() != 0 {
		t.Fatalf("refused puts counted: %d summed, %d written", store.Summed.Load(), store.Written.Load())
	}

	if err := cl.put(ctx, "b", id, bytes.NewReader(data), int64(len(data)), 3, sums); err != nil {
		t.Fatal(err)
	}
	if store.Summed.Load() != 1 || store.Written.Load() != 1 {
		t.Fatalf("after a good put: %d summed, %d written", store.Summed.Load(), store.Written.Load())
	}
	got := store.readSums(id, int64(len(data)))
	if got == nil || !bytes.Equal(got.marshal(), sums.marshal()) {
		t.Fatal("the stored sidecar is not the sums sent")
	}
	if err := store.Verify(id); err != nil {
		t.Fatal(err)
	}
	if repl, _ := store.PutRepl(id, time.Minute); repl != 3 {
		t.Fatalf("put noted with replication %d, want 3", repl)
	}

	// The receiver takes the sender's word for the ID: bytes that do not
	// hash to it, sent with their own sums, are stored (a member checked
	// them against the ID before it sent them), where a put without sums
	// is refused. The scrub's SHA-256 finds such a copy later.
	other := textOf(4, 2*SumChunk)
	wrong := Sum([]byte("not these bytes"))
	if err := cl.put(ctx, "b", wrong, bytes.NewReader(other), int64(len(other)), 0, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("put without sums of bytes that do not hash to the ID: %v", err)
	}
	if err := cl.put(ctx, "b", wrong, bytes.NewReader(other), int64(len(other)), 0, sumsOf(other, wrong)); err != nil {
		t.Fatalf("put with sums: %v", err)
	}
	if err := store.Verify(wrong); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("the full check of a copy stored under a wrong ID: %v", err)
	}
}

// Sums that cannot be the block's are refused with the reason, before the
// block is stored, and the sender reads the reason, not a reset stream.
func TestPutWithBadSums(t *testing.T) {
	_, store, a := protocolPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	data := textOf(5, 3*SumChunk)
	id := Sum(data)
	good := sumsOf(data, id).crc
	for _, tc := range []struct {
		chunk int64
		sums  []uint32
		want  string
	}{
		{SumChunk, good[:2], "2 chunk sums for 3 chunks"},
		{SumChunk, append(good, 1), "4 chunk sums for 3 chunks"},
		{100, good, "chunks of 100 bytes, want 4096..16777216"},
		{1 << 30, good, "chunks of 1073741824 bytes"},
		{0, good, "chunks of 0 bytes"},
	} {
		resp := rawPut(t, ctx, a, request{Op: opPut, ID: id, Size: int64(len(data)), Chunk: tc.chunk, Sums: tc.sums}, data)
		if !strings.Contains(resp.Err, tc.want) {
			t.Fatalf("chunk %d, %d sums: answer %+v, want %q", tc.chunk, len(tc.sums), resp, tc.want)
		}
		if store.Has(id) {
			t.Fatalf("chunk %d, %d sums: stored", tc.chunk, len(tc.sums))
		}
	}
}

// rawPut sends a put request and the block's bytes, and reads the answer.
func rawPut(t *testing.T, ctx context.Context, a mesh.Dialer, req request, data []byte) response {
	t.Helper()
	st, err := a.Dial(ctx, "b", Protocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := writeFrame(st, req); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(data); err != nil {
		t.Fatalf("sending the block: %v", err)
	}
	st.CloseWrite()
	var resp response
	if err := readFrame(st, &resp); err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return resp
}

// The sums travel in fields an older receiver does not know: it decodes
// the request as before (and hashes the block), and a request without
// them, from an older sender, decodes with none.
func TestPutSumsWireSkew(t *testing.T) {
	// request as the releases before the sums defined it.
	type oldRequest struct {
		Op     string `msgpack:"op"`
		ID     ID     `msgpack:"id"`
		Offset int64  `msgpack:"off,omitempty"`
		Size   int64  `msgpack:"size,omitempty"`
		IDs    []ID   `msgpack:"ids,omitempty"`
		Repl   int    `msgpack:"repl,omitempty"`
	}
	data := textOf(6, 2*SumChunk+5)
	id := Sum(data)
	sums := sumsOf(data, id)
	var buf bytes.Buffer
	if err := writeFrame(&buf, request{Op: opPut, ID: id, Size: int64(len(data)), Repl: 2, Chunk: sums.chunk, Sums: sums.crc}); err != nil {
		t.Fatal(err)
	}
	var old oldRequest
	if err := readFrame(&buf, &old); err != nil {
		t.Fatalf("an older receiver cannot read a put with sums: %v", err)
	}
	if old.Op != opPut || old.ID != id || old.Size != int64(len(data)) || old.Repl != 2 {
		t.Fatalf("an older receiver read %+v", old)
	}
	buf.Reset()
	if err := writeFrame(&buf, oldRequest{Op: opPut, ID: id, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	var req request
	if err := readFrame(&buf, &req); err != nil {
		t.Fatal(err)
	}
	if s, err := req.blockSums(); s != nil || err != nil {
		t.Fatalf("an older sender's put: sums %v, %v", s, err)
	}

	// And the older sender's put, hashed, still stores the block.
	cl, store, _ := protocolPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.Put(ctx, "b", id, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if !store.Has(id) || store.Summed.Load() != 0 {
		t.Fatalf("a put without sums: stored %v, %d counted summed", store.Has(id), store.Summed.Load())
	}
}

// The write pipeline sends the sums it computed while hashing its spool:
// the other owners check them and hash nothing, and every copy reads back.
// A block without sums at hand (a manifest) is hashed by its receivers.
func TestWriteSendsSums(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := newTestCluster(t, 3)
	n1 := c.nodes["n1"]
	st := n1.fs.Store()
	data := textOf(7, 3*SumChunk+99)
	id := Sum(data)
	f := spoolOf(t, st, data)
	b := blockWrite{file: "/summed", index: 0, id: id, size: int64(len(data)), want: 3, spool: f, sums: sumsOf(data, id)}
	if n, err := n1.fs.writeBlock(ctx, b, f); err != nil || n != 3 {
		t.Fatalf("write: %d copies, %v", n, err)
	}
	for _, n := range []string{"n2", "n3"} {
		s := c.nodes[n].fs.Store()
		if s.Summed.Load() != 1 {
			t.Fatalf("%s checked %d blocks by their sums, want 1", n, s.Summed.Load())
		}
		if err := s.Verify(id); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
	}
	mb := []byte("a manifest's bytes")
	mid := Sum(mb)
	if _, err := n1.fs.writeBlock(ctx, blockWrite{file: "/summed", index: -1, id: mid, size: int64(len(mb)), want: 3}, bytes.NewReader(mb)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"n2", "n3"} {
		if s := c.nodes[n].fs.Store(); s.Summed.Load() != 1 || !s.Has(mid) {
			t.Fatalf("%s: a block without sums: %d checked by sums, stored %v", n, s.Summed.Load(), s.Has(mid))
		}
	}
}
