package blockstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"shoal.dev/shoal/mesh/meshtest"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestProtocol(t *testing.T) {
	net := meshtest.New()
	a, _ := net.Add("a")
	b, _ := net.Add("b")
	defer a.Close()
	defer b.Close()
	store := newTestStore(t)
	b.Handle(Protocol, NewServer(store, quietLog()).Handle)
	cl := NewClient(a)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	data := bytes.Repeat([]byte("0123456789abcdef"), 100000) // 1.6 MB
	id := Sum(data)
	if has, _, err := cl.Has(ctx, "b", id); err != nil || has {
		t.Fatalf("has before put: %v %v", has, err)
	}
	if err := cl.Put(ctx, "b", id, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if has, size, err := cl.Has(ctx, "b", id); err != nil || !has || size != int64(len(data)) {
		t.Fatalf("has after put: %v %d %v", has, size, err)
	}
	r, n, err := cl.Get(ctx, "b", id, 1000)
	if err != nil || n != int64(len(data)-1000) {
		t.Fatalf("get: %d %v", n, err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data[1000:]) {
		t.Fatalf("get returned %d bytes, err %v", len(got), err)
	}

	// A put whose bytes do not match the ID is refused and stores nothing.
	wrong := Sum([]byte("something else"))
	if err := cl.Put(ctx, "b", wrong, bytes.NewReader(data), int64(len(data))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("mismatched put: %v", err)
	}
	if store.Has(wrong) {
		t.Fatal("mismatched put stored a block")
	}
	if _, _, err := cl.Get(ctx, "b", wrong, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}

	// A corrupt copy is never served whole: a corrupt chunk past the
	// first cuts the stream before its bytes, and the copy is quarantined
	// and counted.
	raw, _ := os.ReadFile(store.path(id))
	raw[len(raw)/2] ^= 1
	os.WriteFile(store.path(id), raw, 0o600)
	r, _, err = cl.Get(ctx, "b", id, 0)
	if err != nil {
		t.Fatalf("get with a corrupt chunk past the first: %v", err)
	}
	got, err = io.ReadAll(r)
	r.Close()
	if err == nil || len(got) > len(raw)/2 {
		t.Fatalf("corrupt copy read: %d of %d bytes, err %v", len(got), len(raw), err)
	}
	if store.Has(id) || store.Corrupt.Load() != 1 {
		t.Fatalf("corrupt copy not quarantined (has %v, count %d)", store.Has(id), store.Corrupt.Load())
	}
	// One whose first chunk is corrupt is refused before its first byte.
	if err := cl.Put(ctx, "b", id, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(store.path(id))
	raw[5] ^= 1
	os.WriteFile(store.path(id), raw, 0o600)
	if _, _, err := cl.Get(ctx, "b", id, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("get corrupt: %v", err)
	}

	// Garbage on the wire gets the stream closed, and the server goes on.
	st, err := a.Dial(ctx, "b", Protocol)
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3})
	io.ReadAll(st)
	st.Close()
	if _, _, err := cl.Has(ctx, "b", id); err != nil {
		t.Fatalf("server broken after garbage: %v", err)
	}
}
