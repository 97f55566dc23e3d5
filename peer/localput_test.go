package peer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shoal.dev/shoal/client"
	"shoal.dev/shoal/clustertest"
	"shoal.dev/shoal/peer"
)

// TestPutPassesTheFileToItsOwner: a put of a local file hands each block's
// owner, an agent of this host, the open file through its local socket
// (none goes over PUT /v1/fs/block), and the file reads back whole. The
// socket refuses, each with one line, a wrong token and a block whose file
// is not a regular file, is missing, or is shorter than the range.
func TestPutPassesTheFileToItsOwner(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := clustertest.Start(t, 3, clustertest.Options{})
	clients := namedClients(t, c)
	data := corpus(17, 2<<20)
	f := localFile(t, data)
	info, err := client.PutLocal(ctx, clients, "/local", f, int64(len(data)), client.PutOptions{BlockSize: 64 << 10, Replication: 1}, nil, nil)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if info.File.Blocks < 3 {
		t.Fatalf("%d blocks, want several", info.File.Blocks)
	}
	// Every block goes through a socket but one shorter than 32 KiB (the
	// client's localMinBlock: the file's tail, if short), which goes over
	// HTTP.
	st, err := clients[0].StatBlocks(ctx, "/local")
	if err != nil {
		t.Fatal(err)
	}
	short := 0
	for _, b := range st.Blocks {
		if !b.Manifest && b.Size < 32<<10 {
			short++
		}
	}
	overHTTP := 0
	for _, cl := range clients {
		overHTTP += routeCount(t, cl, "PUT /v1/fs/block")
	}
	if overHTTP != short || short > 1 {
		t.Errorf("%d blocks went over HTTP, want only the %d shorter than 32 KiB (the tail)", overHTTP, short)
	}
	// The client sent each block's ID and chunk sums with it: its owner
	// checked the chunks against them instead of hashing it again.
	summed := 0
	for i := range 3 {
		summed += int(metric(t, c.Node(i), "shoal_blocks_received_by_sums_total"))
	}
	if summed != info.File.Blocks-short {
		t.Errorf("%d blocks received by their client's sums, want the %d through the socket", summed, info.File.Blocks-short)
	}
	r, err := client.OpenFile(ctx, clients, "/local", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (err %v), differing from the %d put", len(got), err, len(data))
	}

	li, err := clients[0].Local(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if li.Name != c.Node(0).Name() || li.Instance == "" || !strings.HasPrefix(li.Socket, c.Config(0).DataDir) {
		t.Fatalf("local info %+v", li)
	}
	if fi, err := os.Stat(li.Socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, mode %v, want 0600", li.Socket, err, fi.Mode())
	}
	dial := func(token string) (*net.UnixConn, client.LocalAnswer) {
		t.Helper()
		nc, err := net.Dial("unix", li.Socket)
		if err != nil {
			t.Fatal(err)
		}
		conn := nc.(*net.UnixConn)
		t.Cleanup(func() { conn.Close() })
		if err := client.WriteLocalFrame(conn, client.LocalHello{Token: token}, -1); err != nil {
			t.Fatal(err)
		}
		var a client.LocalAnswer
		if _, err := client.ReadLocalFrame(conn, &a); err != nil {
			t.Fatal(err)
		}
		return conn, a
	}
	if _, a := dial("wrong"); a.Status != 401 || !strings.Contains(a.Error, "API token") {
		t.Fatalf("wrong token answered %+v", a)
	}
	tok := c.Config(0).Secret.APIToken()
	if _, a := dial(tok); a.Status != 200 || a.Name != li.Name || a.Instance != li.Instance {
		t.Fatalf("hello answered %+v, want %+v", a, li)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	for _, tc := range []struct {
		req  client.LocalPut
		fd   int
		want string
	}{
		{client.LocalPut{Path: "/x", Replication: 1, Size: 10}, int(pr.Fd()), "not a regular file"},
		{client.LocalPut{Path: "/x", Replication: 1, Offset: int64(len(data)) - 5, Size: 10}, int(f.Fd()), "holds"},
		{client.LocalPut{Path: "/x", Replication: 1, Size: 10}, -1, "one open file, got 0"},
		{client.LocalPut{Path: "/x", Replication: 1, Size: 0}, int(f.Fd()), "a block is 1.."},
		{client.LocalPut{Path: "/x", Replication: 1, Offset: -1, Size: 10}, int(f.Fd()), "offset -1"},
		{client.LocalPut{Path: "x/../..", Replication: 1, Size: 10}, int(f.Fd()), ""},
		{client.LocalPut{Path: "/x", Replication: 1, Size: 10, ID: "beef", Chunk: 64 << 10, Sums: make([]byte, 4)}, int(f.Fd()), "want 64 hex digits"},
		{client.LocalPut{Path: "/x", Replication: 1, Size: 10, ID: sumOf(data[:10]), Chunk: 64 << 10, Sums: make([]byte, 3)}, int(f.Fd()), "not a whole number of 4-byte sums"},
		{client.LocalPut{Path: "/x", Replication: 1, Size: 10, ID: sumOf(data[:10]), Chunk: 64 << 10, Sums: make([]byte, 8)}, int(f.Fd()), "2 chunk sums for 1 chunks"},
		{client.LocalPut{Path: "/x", Replication: 1, Size: 10, ID: sumOf(data[:10]), Chunk: 100, Sums: make([]byte, 4)}, int(f.Fd()), "chunks of 100 bytes"},
	} {
		conn, _ := dial(tok)
		if err := client.WriteLocalFrame(conn, tc.req, tc.fd); err != nil {
			t.Fatal(err)
		}
		var a client.LocalAnswer
		if _, err := client.ReadLocalFrame(conn, &a); err != nil {
			t.Fatal(err)
		}
		if a.Status != 400 || !strings.Contains(a.Error, tc.want) || strings.Contains(a.Error, "\n") {
			t.Errorf("%+v answered %+v, want 400 with %q", tc.req, a, tc.want)
		}
	}
	// The file changed after the client hashed it: the sums sent do not
	// fit the bytes the agent reads, and it refuses the block (409) with
	// one line that says so.
	put := func(req client.LocalPut) client.LocalAnswer {
		t.Helper()
		conn, _ := dial(tok)
		if err := client.WriteLocalFrame(conn, req, int(f.Fd())); err != nil {
			t.Fatal(err)
		}
		var a client.LocalAnswer
		if _, err := client.ReadLocalFrame(conn, &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	block := data[:100<<10]
	sums := binary.LittleEndian.AppendUint32(nil, crc32.Checksum(block[:64<<10], crc32.MakeTable(crc32.Castagnoli)))
	sums = binary.LittleEndian.AppendUint32(sums, crc32.Checksum(block[64<<10:], crc32.MakeTable(crc32.Castagnoli))^1)
	a := put(client.LocalPut{Path: "/changed", Replication: 1, Size: int64(len(block)), ID: sumOf(block), Chunk: 64 << 10, Sums: sums})
	if a.Status != 409 || !strings.Contains(a.Error, "the file changed while it was put: bytes 65536 to 102400") || strings.Contains(a.Error, "\n") {
		t.Errorf("a changed file answered %+v, want 409 naming bytes 65536 to 102400", a)
	}
}

// sumOf is the hex SHA-256 of b, a block's ID.
func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestLocalPutGoesOnWhenAnAgentDies: the agent a put of a local file goes
// through, itself an owner taking blocks through its local socket, dies
// after four blocks are acknowledged; the put goes on through the next
// member (its socket, else HTTP), sends again what died with it, and the
// file reads back whole.
func TestLocalPutGoesOnWhenAnAgentDies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := clustertest.Start(t, 3, clustertest.Options{})
	clients := namedClients(t, c)
	data := corpus(19, 3<<20)
	f := localFile(t, data)
	var (
		acked atomic.Int64
		once  sync.Once
		moves atomic.Int64
	)
	sent := func(int64) {
		if acked.Add(1) == 4 {
			once.Do(func() { c.Kill(0) }) // dead before the put goes on
		}
	}
	on := func(from, to *client.Client, at int64, _ error) { moves.Add(1) }
	info, err := client.PutLocal(ctx, clients, "/died", f, int64(len(data)), client.PutOptions{BlockSize: 64 << 10, Replication: 1}, sent, on)
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if info.File.Size != int64(len(data)) || moves.Load() != 1 {
		t.Fatalf("put %+v with %d moves, want %d bytes and 1 move", info.File, moves.Load(), len(data))
	}
	r, err := client.OpenFile(ctx, clients[1:], "/died", nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (err %v), differing from the %d put", len(got), err, len(data))
	}
}

// TestLocalSocketAtStart: an agent replaces a socket left in its data dir
// by one that died (kill -9 leaves it), and runs without a local socket —
// 404 on GET /v1/fs/local, puts over HTTP — when a file that is not a
// socket has its name.
func TestLocalSocketAtStart(t *testing.T) {
	c := clustertest.Start(t, 2, clustertest.Options{Configure: func(i int, cfg *peer.Config) {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(cfg.DataDir, "local.sock")
		if _, err := os.Lstat(name); err == nil {
			return // Configure runs again for c.Config
		}
		if i == 1 {
			if err := os.WriteFile(name, []byte("mine"), 0o600); err != nil {
				t.Fatal(err)
			}
			return
		}
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close() // a socket nobody listens on, as a killed agent leaves it
	}})
	ctx := context.Background()
	clients := namedClients(t, c)
	li, err := clients[0].Local(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("unix", li.Socket)
	if err != nil {
		t.Fatalf("the stale socket was not replaced: %v", err)
	}
	nc.Close()
	var ae *client.Error
	if _, err := clients[1].Local(ctx); !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("an agent whose socket's name is taken answered %v, want 404", err)
	}
	if b, err := os.ReadFile(filepath.Join(c.Config(1).DataDir, "local.sock")); err != nil || string(b) != "mine" {
		t.Fatalf("the file in the socket's place: %q, %v", b, err)
	}
}

// localFile writes data to a file of the test's temp dir and returns it
// open for reading, closed when the test ends: the local file of a put.
func localFile(t *testing.T, data []byte) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
