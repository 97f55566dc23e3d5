package p2p

import (
	"bufio"
	"context"
	"net"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/sec"
)

// maxBatch bounds the bytes a batchConn holds before it writes them out,
// and so the memory one connection's batch can take. A yamux frame is at
// most 64 KiB, four TLS records.
const maxBatch = 256 << 10

// readBuf is the size of the buffer a coalesced connection reads its
// socket through.
const readBuf = 256 << 10

// coalescing wraps the direct plane's TLS transport. crypto/tls writes each
// record of at most 16 KiB with its own socket write, four for every
// 64 KiB yamux frame, and reads the socket about one record at a time; on
// a block's copy to a replica those system calls cost a quarter of both
// ends' CPU (BenchmarkPlanes). Through coalescing, the records one Write of
// the secured connection produces leave in one socket write, and the
// socket is read through a buffer of readBuf bytes. The bytes on the wire
// are the same records in the same order: only the number of system calls
// changes, so either end may run without it.
type coalescing struct {
	sec.SecureTransport
}

// SecureInbound secures an inbound connection through a batchConn.
func (t coalescing) SecureInbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	bc := newBatchConn(insecure)
	sc, err := t.SecureTransport.SecureInbound(ctx, bc, p)
	if err != nil {
		return nil, err
	}
	return &coalescedConn{SecureConn: sc, raw: bc}, nil
}

// SecureOutbound secures an outbound connection through a batchConn.
func (t coalescing) SecureOutbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	bc := newBatchConn(insecure)
	sc, err := t.SecureTransport.SecureOutbound(ctx, bc, p)
	if err != nil {
		return nil, err
	}
	return &coalescedConn{SecureConn: sc, raw: bc}, nil
}

// coalescedConn is a secured connection over a batchConn whose every Write
// leaves the socket in as few writes as maxBatch allows.
type coalescedConn struct {
	sec.SecureConn
	raw     *batchConn
	wmu     sync.Mutex  // one batch at a time
	writing atomic.Bool // a Write is under way
}

// Write writes p through the secured connection, holding the records it
// produces in the batch, then writes the batch to the socket.
func (c *coalescedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.writing.Store(true)
	defer c.writing.Store(false)
	c.raw.begin()
	n, err := c.SecureConn.Write(p)
	if ferr := c.raw.end(); err == nil {
		err = ferr
	}
	return n, err
}

// Close closes the connection. During a Write it first closes the socket,
// as crypto/tls's Close does during its own Write: the batch may be
// blocked on a peer that stopped reading, and the close_notify alert would
// wait behind it.
func (c *coalescedConn) Close() error {
	if c.writing.Load() {
		c.raw.Conn.Close()
	}
	return c.SecureConn.Close()
}

// batchConn is the socket under a coalescedConn. Between begin and end its
// writes are held (up to maxBatch bytes) and end writes them out at once;
// any other write goes straight to the socket. Writes keep their order:
// the security layer may write from another goroutine while a batch is
// open (an alert, a key update), and such a write joins the batch. Reads
// go through a buffer.
type batchConn struct {
	net.Conn
	r *bufio.Reader

	mu       sync.Mutex // guards batching and buf, and orders socket writes
	batching bool
	buf      []byte
}

func newBatchConn(c net.Conn) *batchConn {
	return &batchConn{Conn: c, r: bufio.NewReaderSize(c, readBuf)}
}

// Read reads through the buffer.
func (c *batchConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write holds p in the open batch, or writes it to the socket when none is
// open. A batch that would pass maxBatch is written out first.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.batching {
		return c.Conn.Write(p)
	}
	if len(c.buf)+len(p) > maxBatch {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > maxBatch {
			return c.Conn.Write(p)
		}
	}
	c.buf = append(c.buf, p...)
	return len(p), nil
}

// begin opens a batch.
func (c *batchConn) begin() {
	c.mu.Lock()
	c.batching = true
	c.mu.Unlock()
}

// end writes the batch out and closes it.
func (c *batchConn) end() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batching = false
	return c.flushLocked()
}

// flushLocked writes the batch to the socket; the batch is emptied even
// when the write fails, since the connection is then broken.
func (c *batchConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}
