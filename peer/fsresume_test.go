package peer_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"shoal.dev/shoal/client"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"shoal.dev/shoal/blockstore"
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
		n, err := blockstore.NextBlockLen(bytes.NewReader(data1), off, int64(len(data1)), 64<<10)
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
