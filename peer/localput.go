package peer

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/client"
	"shoal.dev/shoal/disk"
)

// The local socket: a client on this host passes the open file of a put
// and the range of each block instead of sending its bytes (the protocol
// is described in client/local.go). It lives in the data dir, which only
// the agent's user may enter (0700), and is itself 0600: only that user
// (and root) may connect, and it checks the API token like the HTTP API.
const (
	localSocketName = "local.sock"
	// maxSocketPath is the longest socket path bound: sun_path holds 104
	// bytes on macOS, 108 on Linux, with the closing NUL.
	maxSocketPath = 103
	// maxLocalConns bounds the local socket's open connections.
	maxLocalConns = 64
)

// localServer is the local socket's listener and its connections.
type localServer struct {
	ln       *net.UnixListener
	path     string
	instance string
	slots    chan struct{}
	wg       sync.WaitGroup
}

// listenLocal opens DATA_DIR/local.sock. It returns nil (and logs why) when
// it cannot: clients then send the bytes over HTTP, as to an older agent.
func (n *Node) listenLocal() *localServer {
	path, err := filepath.Abs(filepath.Join(n.cfg.DataDir, localSocketName))
	if err != nil {
		n.log.Warn("no local socket: clients on this host send a put's bytes over HTTP", "err", err)
		return nil
	}
	if len(path) > maxSocketPath {
		n.log.Info("no local socket: the data dir's path is too long for one; clients on this host send a put's bytes over HTTP", "path", path, "max", maxSocketPath)
		return nil
	}
	// A socket left by an agent that stopped: this agent holds the data
	// dir's lock, so no other agent serves it. Anything else is left.
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			n.log.Warn("no local socket: something else has its name", "path", path)
			return nil
		}
		os.Remove(path)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		n.log.Warn("no local socket: clients on this host send a put's bytes over HTTP", "path", path, "err", err)
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		n.log.Warn("no local socket: cannot restrict it to this user", "path", path, "err", err)
		return nil
	}
	id := make([]byte, 16)
	rand.Read(id)
	return &localServer{ln: ln, path: path, instance: hex.EncodeToString(id), slots: make(chan struct{}, maxLocalConns)}
}

// serveLocal accepts the local socket's connections until ctx ends, then
// closes them and waits for their handlers.
func (n *Node) serveLocal(ctx context.Context, ls *localServer) {
	stop := context.AfterFunc(ctx, func() { ls.ln.Close() })
	defer stop()
	defer ls.wg.Wait()
	for {
		c, err := ls.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() == nil {
				n.log.Error("local socket stopped", "err", err)
			}
			return
		}
		select {
		case ls.slots <- struct{}{}:
		default:
			writeLocalRefusal(c, http.StatusServiceUnavailable, fmt.Sprintf("the agent has %d local connections open, its limit", maxLocalConns))
			c.Close()
			continue
		}
		ls.wg.Add(1)
		go func() {
			defer ls.wg.Done()
			defer func() { <-ls.slots }()
			n.handleLocalConn(ctx, ls, c)
		}()
	}
}

// writeLocalRefusal answers a local socket's client with a refusal,
// bounded in time.
func writeLocalRefusal(c *net.UnixConn, status int, msg string) {
	c.SetWriteDeadline(time.Now().Add(time.Second))
	client.WriteLocalFrame(c, client.LocalAnswer{Status: status, Error: msg}, -1)
}

// handleLocalConn serves one connection: its hello, then one block.
func (n *Node) handleLocalConn(ctx context.Context, ls *localServer, c *net.UnixConn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	refuse := func(status int, msg string) { writeLocalRefusal(c, status, msg) }

	c.SetDeadline(time.Now().Add(n.cfg.APIReadTimeout))
	var hello client.LocalHello
	fds, err := client.ReadLocalFrame(c, &hello)
	client.CloseFDs(fds)
	if err != nil {
		return // not a client of ours, or gone
	}
	if len(fds) > 0 {
		refuse(http.StatusBadRequest, "local socket: a hello carries no descriptor")
		return
	}
	if !n.cfg.Secret.CheckToken(hello.Token) {
		refuse(http.StatusUnauthorized, "missing or wrong API token: the client needs the cluster secret (SHOAL_SECRET or --secret-file)")
		return
	}
	if client.WriteLocalFrame(c, client.LocalAnswer{Status: http.StatusOK, Name: n.cfg.Name, Instance: ls.instance}, -1) != nil {
		return
	}

	var req client.LocalPut
	fds, err = client.ReadLocalFrame(c, &req)
	if err != nil {
		return
	}
	if len(fds) != 1 {
		client.CloseFDs(fds)
		refuse(http.StatusBadRequest, fmt.Sprintf("local socket: a block comes with one open file, got %d", len(fds)))
		return
	}
	f := os.NewFile(uintptr(fds[0]), "put by a local client")
	defer f.Close()
	p, status, msg := n.checkLocalPut(req, f)
	if status != http.StatusOK {
		refuse(status, msg)
		return
	}
	id, crc, err := localSums(req)
	if err != nil {
		refuse(http.StatusBadRequest, err.Error())
		return
	}
	// The client waits for the answer and sends nothing more: a read
	// that ends means it is gone, and the block is not wanted.
	c.SetDeadline(time.Time{})
	go func() {
		var b [1]byte
		c.Read(b[:])
		cancel()
	}()
	r := smallReads{io.NewSectionReader(f, req.Offset, req.Size)}
	var (
		ack     blockstore.BlockAck
		release func()
	)
	if req.ID == "" {
		ack, release, err = n.fs.ReceiveBlock(ctx, p, req.Index, r, req.Size, req.Replication)
	} else {
		// The client hashed the block and summed its chunks: the
		// chunks are checked as they are read, not hashed again.
		ack, release, err = n.fs.ReceiveSummedBlock(ctx, p, req.Index, r, req.Size, req.Replication, id, req.Chunk, crc)
	}
	if err != nil {
		status, body := n.blockRefusal(p, req.Index, err)
		c.SetWriteDeadline(time.Now().Add(n.cfg.APIWriteTimeout))
		client.WriteLocalFrame(c, client.LocalAnswer{Status: status, Error: body.Error, LowDisk: body.LowDisk}, -1)
		return
	}
	wa := wireAck(ack)
	c.SetWriteDeadline(time.Now().Add(n.cfg.APIWriteTimeout))
	client.WriteLocalFrame(c, client.LocalAnswer{Status: http.StatusOK, Ack: &wa}, -1)
	release()
}

// checkLocalPut checks a block sent through the local socket as
// handlePutBlock checks one over HTTP, and its file: a regular file that
// holds the range. It returns the clean path, or a status and why.
func (n *Node) checkLocalPut(req client.LocalPut, f *os.File) (string, int, string) {
	p, _, _, err := checkBlockPut(req.Path, strconv.Itoa(req.Index), strconv.Itoa(req.Replication))
	if err != nil {
		return "", http.StatusBadRequest, err.Error()
	}
	if req.Size <= 0 || req.Size > blockstore.MaxBlockSize {
		return "", http.StatusBadRequest, fmt.Sprintf("a block is 1..%d bytes, not %d", blockstore.MaxBlockSize, req.Size)
	}
	if req.Offset < 0 {
		return "", http.StatusBadRequest, "offset " + strconv.FormatInt(req.Offset, 10) + ": want at least 0"
	}
	fi, err := f.Stat()
	switch {
	case err != nil:
		return "", http.StatusBadRequest, "the file sent with block " + strconv.Itoa(req.Index) + " cannot be read: " + err.Error()
	case !fi.Mode().IsRegular():
		return "", http.StatusBadRequest, fmt.Sprintf("the file sent with block %d is not a regular file (%s)", req.Index, fi.Mode().Type())
	case fi.Size() < req.Offset+req.Size:
		return "", http.StatusBadRequest, fmt.Sprintf("the file sent with block %d holds %d bytes, not %d..%d", req.Index, fi.Size(), req.Offset, req.Offset+req.Size)
	}
	return p, http.StatusOK, ""
}

// localSums decodes the ID and chunk sums a client sent with a block, if
// any (the zero ID when none); ReceiveSummedBlock checks that they fit it.
func localSums(req client.LocalPut) (blockstore.ID, []uint32, error) {
	if req.ID == "" && req.Chunk == 0 && req.Sums == nil {
		return blockstore.ID{}, nil, nil
	}
	id, err := blockstore.ParseID(req.ID)
	if err != nil {
		return id, nil, fmt.Errorf("block %d: %w", req.Index, err)
	}
	if len(req.Sums)%4 != 0 {
		return id, nil, fmt.Errorf("block %d: chunk sums of %d bytes, not a whole number of 4-byte sums", req.Index, len(req.Sums))
	}
	crc := make([]uint32, len(req.Sums)/4)
	for i := range crc {
		crc[i] = binary.LittleEndian.Uint32(req.Sums[4*i:])
	}
	return id, crc, nil
}

// blockRefusal is the answer to a block of a put that ReceiveBlock
// refused, over HTTP or the local socket.
func (n *Node) blockRefusal(p string, index int, err error) (int, apiError) {
	var full *disk.FullError
	switch {
	case errors.Is(err, blockstore.ErrBadSums):
		return http.StatusBadRequest, apiError{Error: err.Error()}
	case errors.Is(err, blockstore.ErrFileChanged):
		n.log.Warn("block of a put refused: the client's file changed while it was read", "path", p, "index", index, "err", err)
		return http.StatusConflict, apiError{Error: err.Error()}
	case errors.As(err, &full):
		// This agent could not spool the block: the client tries another.
		n.log.Warn("block of a put refused: no room to spool it here", "path", p, "index", index, "err", err)
		return http.StatusInsufficientStorage, apiError{Error: err.Error(), LowDisk: true}
	case errors.Is(err, disk.ErrFull):
		n.log.Warn("block of a put refused: no member has room", "path", p, "index", index, "err", err)
		return http.StatusInsufficientStorage, apiError{Error: err.Error()}
	default:
		n.log.Warn("block of a put refused", "path", p, "index", index, "err", err)
		return http.StatusServiceUnavailable, apiError{Error: err.Error()}
	}
}

// handleLocalInfo serves GET /v1/fs/local: this agent's local socket, 404
// when it has none.
func (n *Node) handleLocalInfo(w http.ResponseWriter, r *http.Request) {
	if n.local == nil {
		writeError(w, http.StatusNotFound, "this agent has no local socket")
		return
	}
	writeJSON(w, http.StatusOK, client.LocalInfo{Name: n.cfg.Name, Socket: n.local.path, Instance: n.local.instance})
}

// localReadSize is the most a block sent through the local socket is read
// from its file at a time.
const localReadSize = 128 << 10

// smallReads reads at most localReadSize at a time from r.
type smallReads struct{ r io.Reader }

func (s smallReads) Read(p []byte) (int, error) {
	return s.r.Read(p[:min(len(p), localReadSize)])
}
