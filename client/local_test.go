package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// localFake is a fake agent with a local socket: over HTTP it answers
// GET /v1/fs/local (unless old: an agent from before the socket), the ring
// owner of every block ("a"), PUT /v1/fs/block and the commit; on its
// socket it answers the hello with answerInstance and reads each block
// from the file sent with it, unless cut (it then closes the connection
// once it has the block's request).
type localFake struct {
	dir            string
	old            bool
	instance       string
	answerInstance string
	cut            bool
	more           string // another member of the ring, if any

	mu     sync.Mutex
	blocks map[int]string   // index -> SHA-256 of the bytes the agent got
	reqs   map[int]LocalPut // index -> the request of a block through the socket
	http   int              // blocks over HTTP
	local  int              // blocks through the socket
	asked  int              // GET /v1/fs/local
}

func (a *localFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/fs/local":
		a.mu.Lock()
		a.asked++
		a.mu.Unlock()
		if a.old {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(LocalInfo{Name: "a", Socket: filepath.Join(a.dir, "local.sock"), Instance: a.instance})
	case "/v1/ring/owners":
		owners := []string{"a"}
		if n, _ := strconv.Atoi(r.URL.Query().Get("n")); n > 1 && a.more != "" {
			owners = append(owners, a.more) // a member that never owns a first copy
		}
		json.NewEncoder(w).Encode(OwnersInfo{Key: r.URL.Query().Get("key"), Owners: owners})
	case "/v1/fs/block":
		b, _ := io.ReadAll(r.Body)
		i, _ := strconv.Atoi(r.URL.Query().Get("index"))
		json.NewEncoder(w).Encode(a.got(i, b, false))
	case "/v1/fs/commit":
		json.NewEncoder(w).Encode(PutInfo{})
	default:
		http.NotFound(w, r)
	}
}

func (a *localFake) got(i int, b []byte, local bool) BlockAck {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.blocks[i] = blockKey(b)
	if local {
		a.local++
	} else {
		a.http++
	}
	return BlockAck{ID: blockKey(b), Size: int64(len(b)), Copies: 1, Replication: 1}
}

func (a *localFake) serveSocket(t *testing.T) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(a.dir, "local.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			go a.serveConn(c)
		}
	}()
}

func (a *localFake) serveConn(c *net.UnixConn) {
	defer c.Close()
	var hello LocalHello
	fds, err := ReadLocalFrame(c, &hello)
	CloseFDs(fds)
	if err != nil {
		return
	}
	WriteLocalFrame(c, LocalAnswer{Status: 200, Name: "a", Instance: a.answerInstance}, -1)
	var req LocalPut
	fds, err = ReadLocalFrame(c, &req)
	if err != nil || len(fds) != 1 {
		CloseFDs(fds)
		return
	}
	f := os.NewFile(uintptr(fds[0]), "sent")
	defer f.Close()
	if a.cut {
		return
	}
	b := make([]byte, req.Size)
	if _, err := f.ReadAt(b, req.Offset); err != nil {
		WriteLocalFrame(c, LocalAnswer{Status: 400, Error: err.Error()}, -1)
		return
	}
	ack := a.got(req.Index, b, true)
	a.mu.Lock()
	if a.reqs != nil {
		a.reqs[req.Index] = req
	}
	a.mu.Unlock()
	WriteLocalFrame(c, LocalAnswer{Status: 200, Ack: &ack}, -1)
}

// A put of a local file passes the file to an agent of this host through
// its local socket, and only when that socket answers as the same agent
// (its instance); when it cannot (an older agent, another agent, no socket,
// a connection cut with the block) the block goes over HTTP and the put
// succeeds all the same. A block shorter than localMinBlock (the file's
// 5-byte tail) always goes over HTTP.
func TestPutPassesTheFileToALocalAgent(t *testing.T) {
	const bs = localMinBlock
	var data []byte
	for i := range 5 {
		data = append(data, bytes.Repeat([]byte{byte('a' + i)}, bs)...)
	}
	data = append(data, "tail\n"...)
	file := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		agent     *localFake
		noSocket  bool
		wantLocal bool
	}{
		{name: "same agent", agent: &localFake{instance: "i1", answerInstance: "i1"}, wantLocal: true},
		{name: "older agent", agent: &localFake{old: true, instance: "i1", answerInstance: "i1"}},
		{name: "another agent", agent: &localFake{instance: "i1", answerInstance: "i2"}},
		{name: "no socket", agent: &localFake{instance: "i1", answerInstance: "i1"}, noSocket: true},
		{name: "cut", agent: &localFake{instance: "i1", answerInstance: "i1", cut: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.agent
			a.dir, a.blocks = t.TempDir(), map[int]string{}
			if !tc.noSocket {
				a.serveSocket(t)
			}
			srv := httptest.NewServer(a)
			defer srv.Close()
			c, err := New(srv.URL, "")
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := PutLocal(context.Background(), []*Client{c.Named("a")}, "/f", f, int64(len(data)), PutOptions{BlockSize: bs, Replication: 1}, nil, nil); err != nil {
				t.Fatalf("put: %v", err)
			}
			// The fake's goroutines wrote these under a.mu; the answers
			// that came back through the kernel order nothing for the
			// race detector.
			a.mu.Lock()
			defer a.mu.Unlock()
			for i := range 6 {
				want := data[i*bs : min(len(data), (i+1)*bs)]
				if a.blocks[i] != blockKey(want) {
					t.Fatalf("block %d: the agent got other bytes", i)
				}
			}
			if tc.wantLocal && (a.local != 5 || a.http != 1) {
				t.Fatalf("%d blocks through the socket, %d over HTTP; want the 5 full ones through the socket", a.local, a.http)
			}
			if !tc.wantLocal && (a.local != 0 || a.http != 6) {
				t.Fatalf("%d blocks through the socket, %d over HTTP; want all 6 over HTTP", a.local, a.http)
			}
		})
	}
}

// A put whose blocks are all shorter than localMinBlock (a small file)
// sends them over HTTP without asking the agent for its socket: handing
// the file over would cost more than sending its bytes.
func TestSmallPutSkipsTheLocalSocket(t *testing.T) {
	data := bytes.Repeat([]byte("small file\n"), 300)
	file := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	a := &localFake{instance: "i1", answerInstance: "i1", dir: t.TempDir(), blocks: map[int]string{}}
	a.serveSocket(t)
	srv := httptest.NewServer(a)
	defer srv.Close()
	c, err := New(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := PutLocal(context.Background(), []*Client{c.Named("a")}, "/f", f, int64(len(data)), PutOptions{BlockSize: 1000, Replication: 1}, nil, nil); err != nil {
		t.Fatalf("put: %v", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.asked != 0 || a.local != 0 || a.http != 4 {
		t.Fatalf("asked for the socket %d times, %d blocks through it, %d over HTTP; want 0, 0 and all 4 over HTTP", a.asked, a.local, a.http)
	}
}

// A frame over the limit is refused by the reader at its door.
func TestLocalFrameLimit(t *testing.T) {
	a, b, err := unixPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	go a.Write([]byte{0, 1, 0, 1}) // 65,537 bytes announced
	var v LocalPut
	if _, err := ReadLocalFrame(b, &v); err == nil {
		t.Fatal("a frame of 65,537 bytes was read")
	}
	if err := WriteLocalFrame(a, LocalPut{Path: string(bytes.Repeat([]byte("x"), MaxLocalFrame))}, -1); err == nil {
		t.Fatal("a frame over the limit was written")
	}
}

func unixPair() (*net.UnixConn, *net.UnixConn, error) {
	dir, err := os.MkdirTemp("", "lf")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "s"), Net: "unix"})
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	a, err := net.DialUnix("unix", nil, ln.Addr().(*net.UnixAddr))
	if err != nil {
		return nil, nil, err
	}
	b, err := ln.AcceptUnix()
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

// A block handed over through the local socket carries the ID and the
// CRC32C chunk sums the client computed while hashing it to find its
// owner, so that the agent checks its chunks instead of hashing it again;
// a block too large for its sums to fit a frame carries none.
func TestLocalPutSendsItsSums(t *testing.T) {
	const bs = 4 * LocalSumChunk
	var data []byte
	for i := range 10 * LocalSumChunk / 8 { // 2.5 blocks
		data = append(data, fmt.Sprintf("%07d\n", i)...)
	}
	file := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// Two members at R=1: the client hashes each block to find its owner.
	a := &localFake{instance: "i1", answerInstance: "i1", more: "b", dir: t.TempDir(), blocks: map[int]string{}, reqs: map[int]LocalPut{}}
	a.serveSocket(t)
	srv := httptest.NewServer(a)
	defer srv.Close()
	c, err := New(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := PutLocal(context.Background(), []*Client{c.Named("a")}, "/f", f, int64(len(data)), PutOptions{BlockSize: bs, Replication: 1}, nil, nil); err != nil {
		t.Fatalf("put: %v", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.reqs) != 3 {
		t.Fatalf("%d blocks through the socket, want 3", len(a.reqs))
	}
	for i, req := range a.reqs {
		b := data[req.Offset : req.Offset+req.Size]
		var want []byte
		for k := 0; k < len(b); k += LocalSumChunk {
			want = binary.LittleEndian.AppendUint32(want, crc32.Checksum(b[k:min(k+LocalSumChunk, len(b))], crc32.MakeTable(crc32.Castagnoli)))
		}
		if req.ID != blockKey(b) || req.Chunk != LocalSumChunk || !bytes.Equal(req.Sums, want) {
			t.Errorf("block %d (%d bytes): id %q, %d sums of %d bytes; want %s, %d sums of %d", i, len(b), req.ID, len(req.Sums)/4, req.Chunk, blockKey(b), len(want)/4, LocalSumChunk)
		}
	}

	// A block over localSummedMax: its sums would not fit a frame.
	a.reqs = map[int]LocalPut{}
	a.mu.Unlock()
	lp := newLocalPuts(f)
	over, upTo := lp.summed(context.Background(), c.Named("a"), localSummedMax+1), lp.summed(context.Background(), c.Named("a"), localSummedMax)
	_, sent, err := lp.put(context.Background(), c.Named("a"), "/f", 0, 0, int64(len(data)), 1, &blockSums{id: blockKey(data)})
	a.mu.Lock()
	if over || !upTo {
		t.Fatalf("blocks over %d bytes must be hashed without sums (%v), those up to it with them (%v)", localSummedMax, over, upTo)
	}
	if err != nil || !sent || a.reqs[0].ID != "" || a.reqs[0].Sums != nil {
		t.Fatalf("a block without sums: sent %v, err %v, request %+v", sent, err, a.reqs[0])
	}
}
