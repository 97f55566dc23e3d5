package peer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"shoal.dev/shoal/client"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
)

// goneClient is a client for an address nothing listens on.
func goneClient(t *testing.T) *client.Client {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cl, err := client.New(addr, "x")
	if err != nil {
		t.Fatal(err)
	}
	return cl.Named("gone")
}

func TestResumablePutAndReadFailOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := clustertest.Start(t, 4, clustertest.Options{})
	tok := c.Config(0).Secret.APIToken()
	clients := make([]*client.Client, 4)
	for i := range clients {
		cl, err := client.New(c.Node(i).HTTPURL(), tok)
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = cl.Named(c.Node(i).Name())
	}
	data := corpus(11, 3<<20)

	// The first agent is gone from the start, the second is killed after
	// four blocks are acknowledged: the put goes on through the third.
	var (
		mu    sync.Mutex
		moves []string
		acked atomic.Int64
		once  sync.Once
	)
	on := func(from, to *client.Client, at int64, _ error) {
		mu.Lock()
		moves = append(moves, from.String()+" -> "+to.String())
		mu.Unlock()
	}
	sent := func(n int64) {
		if acked.Add(1) == 4 {
			once.Do(func() { go c.Kill(1) })
		}
	}
	list := []*client.Client{goneClient(t), clients[1], clients[2], clients[3]}
	info, err := client.PutLocal(ctx, list, "/resumed", bytes.NewReader(data), int64(len(data)),
		client.PutOptions{BlockSize: 64 << 10, Replication: 3}, sent, on)
	if err != nil {
		t.Fatalf("resumable put: %v", err)
	}
	if info.File.Size != int64(len(data)) {
		t.Fatalf("put %+v", info.File)
	}
	mu.Lock()
	if len(moves) != 2 || moves[0] != list[0].String()+" -> "+clients[1].String() || moves[1] != clients[1].String()+" -> "+clients[2].String() {
		t.Fatalf("failovers %v", moves)
	}
	mu.Unlock()

	// Read back through a dead agent first, then one killed mid-read.
	var readMoves atomic.Int64
	px := newCutProxy(t, clients[2].Addr())
	viaProxy, err := client.New(px.addr(), tok)
	if err != nil {
		t.Fatal(err)
	}
	r, err := client.OpenFile(ctx, []*client.Client{goneClient(t), viaProxy, clients[3]}, "/resumed", func(from, to *client.Client, at int64, _ error) {
		readMoves.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 100<<10)
	if _, err := io.ReadFull(r, head); err != nil {
		t.Fatal(err)
	}
	px.cut() // the agent's connections drop, as when it dies
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read on after the agent died: %v", err)
	}
	r.Close()
	if readMoves.Load() != 2 {
		t.Fatalf("%d moves while reading, want 2 (past the gone agent, past the killed one)", readMoves.Load())
	}
	if got := append(head, rest...); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differ from the %d put", len(got), len(data))
	}

	// R = 1 and a node holding some of the blocks dies after they were
	// acknowledged: the commit names them, the put sends them again.
	data1 := corpus(12, 3<<20) // blocks not stored already
	blocks := 0
	for off := int64(0); off < int64(len(data1)); blocks++ {
		n, err := client.NextBlockLen(bytes.NewReader(data1), off, int64(len(data1)), 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		off += n
	}
	var acks atomic.Int64
	info, err = client.PutLocal(ctx, []*client.Client{clients[3]}, "/r1", bytes.NewReader(data1), int64(len(data1)),
		client.PutOptions{BlockSize: 64 << 10, Replication: 1}, func(int64) {
			if acks.Add(1) == int64(blocks) {
				c.Kill(0)
			}
		}, nil)
	if err != nil {
		t.Fatalf("put whose blocks died before the commit: %v", err)
	}
	if acks.Load() <= int64(blocks) {
		t.Fatalf("%d acknowledgements for %d blocks: nothing was sent again", acks.Load(), blocks)
	}
	var back bytes.Buffer
	rr, err := client.OpenFile(ctx, []*client.Client{clients[3]}, "/r1", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(&back, rr)
	rr.Close()
	if !bytes.Equal(back.Bytes(), data1) {
		t.Fatal("/r1 read back differs")
	}

	// Every agent gone: a clear error, nothing stored.
	_, err = client.PutLocal(ctx, []*client.Client{goneClient(t)}, "/never", bytes.NewReader(data), int64(len(data)),
		client.PutOptions{BlockSize: 64 << 10}, nil, nil)
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("every member stopped answering")) {
		t.Fatalf("put with no agent: %v", err)
	}
	if _, err := clients[3].Stat(ctx, "/never"); err == nil {
		t.Fatal("a failed put left a file")
	}
	// A file replaced between two reads of a resumed get is refused.
	if _, _, _, err := clients[3].OpenAt(ctx, "/resumed", 10, "0000"); !isStatus(err, 409) {
		t.Fatalf("read of another version: %v", err)
	}
}

func isStatus(err error, status int) bool {
	var ae *client.Error
	return errors.As(err, &ae) && ae.Status == status
}

// cutProxy forwards TCP connections to an agent until cut, which drops
// every connection and stops listening: to its clients, the agent died.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target = strings.TrimPrefix(target, "http://")
	p := &cutProxy{ln: ln}
	t.Cleanup(p.cut)
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) addr() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	p.conns = nil
}

// TestPutSendsBlocksToTheirOwners: with R = 1, the resumable put sends
// each block straight to the agent of its ring owner, so every node wrote
// (as the pipeline's writer) the blocks it holds, not the first agent all
// of them; the file reads back whole. Only the manifest, written by the
// committing agent, may sit elsewhere.
func TestPutSendsBlocksToTheirOwners(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := clustertest.Start(t, 3, clustertest.Options{})
	clients := namedClients(t, c)
	data := corpus(12, 2<<20)
	info, err := client.PutLocal(ctx, clients, "/owned", bytes.NewReader(data), int64(len(data)),
		client.PutOptions{BlockSize: 64 << 10, Replication: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.File.Blocks < 20 {
		t.Fatalf("%d blocks, want at least 20", info.File.Blocks)
	}
	others := 0
	for i := 0; i < 3; i++ {
		fs := c.Node(i).FS()
		wrote := fs.Writes.Blocks.Load()
		held, _ := fs.Store().Held()
		if d := wrote - held; d < -1 || d > 1 {
			t.Errorf("%s wrote %d blocks and holds %d: blocks did not go to their owners' agents", c.Node(i).Name(), wrote, held)
		}
		if i > 0 {
			others += int(wrote)
		}
	}
	if others == 0 {
		t.Error("every block went through the first agent")
	}
	r, err := client.OpenFile(ctx, clients, "/owned", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), want the %d put", len(got), err, len(data))
	}
}

// routeCount is how many requests of route node's agent answered with
// 200, from its /metrics.
func routeCount(t *testing.T, cl *client.Client, route string) int {
	t.Helper()
	text, err := cl.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "shoal_http_requests_total{") && strings.Contains(line, `code="200"`) && strings.Contains(line, `route="`+route+`"`) {
			var n int
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &n)
			total += n
		}
	}
	return total
}

// TestGetReadsBlocksFromTheirHolders: a read fetches each block straight
// from the agent of a member that holds it, never through the first agent;
// when a holder's agent does not answer, the rest of the file comes
// through the first agent (which reaches the holder over the data plane),
// whole.
func TestGetReadsBlocksFromTheirHolders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := clustertest.Start(t, 3, clustertest.Options{})
	clients := namedClients(t, c)
	data := corpus(13, 2<<20)
	info, err := client.PutLocal(ctx, clients, "/spread", bytes.NewReader(data), int64(len(data)),
		client.PutOptions{BlockSize: 64 << 10, Replication: 1}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	read := func(list []*client.Client) []byte {
		t.Helper()
		r, err := client.OpenFile(ctx, list, "/spread", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if r.Size() != int64(len(data)) {
			t.Fatalf("size %d, want %d", r.Size(), len(data))
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := read(clients); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differing from the %d put", len(got), len(data))
	}
	direct := 0
	for i, cl := range clients {
		n := routeCount(t, cl, "GET /v1/fs/block")
		if n == 0 {
			t.Errorf("node%d served no block straight", i+1)
		}
		direct += n
	}
	if direct != info.File.Blocks {
		t.Errorf("%d blocks read straight from holders, want all %d", direct, info.File.Blocks)
	}
	if n := routeCount(t, clients[0], "GET /v1/fs/file"); n != 0 {
		t.Errorf("the first agent streamed the file %d times", n)
	}

	// node3's agent does not answer: its blocks, and every byte after the
	// first of them, come through node1.
	list := []*client.Client{clients[0], clients[1], goneClient(t).Named(c.Node(2).Name())}
	if got := read(list); !bytes.Equal(got, data) {
		t.Fatalf("read back around a silent holder: %d bytes, differing from the %d put", len(got), len(data))
	}
	if n := routeCount(t, clients[0], "GET /v1/fs/file"); n != 1 {
		t.Errorf("the first agent streamed the file %d times, want once", n)
	}
}

// namedClients returns an API client of each of c's nodes, named after
// it, so that reads may go straight to a block's holders.
func namedClients(tb testing.TB, c *clustertest.Cluster) []*client.Client {
	tb.Helper()
	tok := c.Config(0).Secret.APIToken()
	var clients []*client.Client
	for i := 0; i < c.Len(); i++ {
		cl, err := client.New(c.Node(i).HTTPURL(), tok)
		if err != nil {
			tb.Fatal(err)
		}
		clients = append(clients, cl.Named(c.Node(i).Name()))
	}
	return clients
}
