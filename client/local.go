package client

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// An agent takes a put's blocks from a client on its own host as the open
// file itself: the client connects to the agent's local socket (a Unix
// socket in its data dir, LocalInfo.Socket, mode 0600), proves it knows the
// API token, and passes its file's descriptor (SCM_RIGHTS) with the range
// of a block; the agent reads the range with pread and checks and stores it
// as it would a PUT /v1/fs/block body. The bytes never cross a socket.
//
// The protocol: frames of a 4-byte big-endian length (1..MaxLocalFrame)
// and that many bytes of JSON. One connection carries exactly
//
//	client: LocalHello                     agent: LocalAnswer (Name, Instance)
//	client: LocalPut + one descriptor      agent: LocalAnswer (Ack)
//
// and is then closed. A refusal is a LocalAnswer with Status other than
// 200 and Error, after which the agent closes the connection.

// LocalInfo is the body of GET /v1/fs/local: the agent's local socket and
// the instance ID it answers there, random for each start of the agent.
// A client uses the socket only when it answers the same Name and Instance
// as the agent asked over HTTP: another host may have an agent with the
// same data dir path, the same name, even the same cluster.
type LocalInfo struct {
	Name     string `json:"name"`
	Socket   string `json:"socket"`
	Instance string `json:"instance"`
}

// LocalHello opens a connection to the local socket.
type LocalHello struct {
	Token string `json:"token"`
}

// LocalPut is one block of a resumable put, as PUT /v1/fs/block takes it,
// read by the agent from the descriptor sent with it: Size bytes from
// Offset. ID, Chunk and Sums, when set, are the block's ID (hex SHA-256)
// and the CRC32C (Castagnoli) of each Chunk bytes of it, little-endian
// uint32s, which the client computed in the one pass over the bytes it
// made to find the block's owner: the agent then checks each chunk it
// reads against its sum instead of hashing the block again (an agent of
// an older release ignores them and hashes it).
type LocalPut struct {
	Path        string `json:"path"`
	Index       int    `json:"index"`
	Replication int    `json:"replication"`
	Offset      int64  `json:"offset"`
	Size        int64  `json:"size"`
	ID          string `json:"id,omitempty"`
	Chunk       int64  `json:"chunk,omitempty"`
	Sums        []byte `json:"sums,omitempty"`
}

// LocalSumChunk is the chunk a client's sums of a block cover (the
// agents' blockstore.SumChunk: the sums become the block's sidecar as
// they are).
const LocalSumChunk = 64 << 10

// localSummedMax is the largest block handed over with its sums: those of
// a larger one would not fit a frame (8,192 sums of 4 bytes, base64 in
// JSON, ~44 KB); the agent hashes it.
const localSummedMax = 512 << 20

// blockSums is what a client computed of one block to find its owner:
// its ID and, for a block to hand over through a local socket, its
// chunk sums (nil otherwise).
type blockSums struct {
	id   string
	sums []byte
}

// LocalAnswer answers a LocalHello (Name, Instance) or a LocalPut (Ack).
// Status is an HTTP status: 200, or the one PUT /v1/fs/block would have
// answered with Error (and LowDisk).
type LocalAnswer struct {
	Status   int       `json:"status"`
	Error    string    `json:"error,omitempty"`
	LowDisk  bool      `json:"low_disk,omitempty"`
	Name     string    `json:"name,omitempty"`
	Instance string    `json:"instance,omitempty"`
	Ack      *BlockAck `json:"ack,omitempty"`
}

// MaxLocalFrame bounds a frame of the local socket's protocol.
const MaxLocalFrame = 64 << 10

// WriteLocalFrame writes v as one frame to c, with the descriptor fd
// attached when fd >= 0.
func WriteLocalFrame(c *net.UnixConn, v any, fd int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > MaxLocalFrame {
		return fmt.Errorf("local socket: a frame of %d bytes is over the limit of %d", len(b), MaxLocalFrame)
	}
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	frame = append(frame, b...)
	var oob []byte
	if fd >= 0 {
		oob = syscall.UnixRights(fd)
	}
	n, _, err := c.WriteMsgUnix(frame, oob, nil)
	if err == nil && n < len(frame) {
		_, err = c.Write(frame[n:])
	}
	return err
}

// ReadLocalFrame reads one frame from c into v and returns the descriptors
// that came with it (the caller closes them). The peer sends nothing more
// until it has an answer, so a frame never shares a read with the next.
func ReadLocalFrame(c *net.UnixConn, v any) (fds []int, err error) {
	buf := make([]byte, 4+MaxLocalFrame)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if oobn > 0 {
		if msgs, perr := syscall.ParseSocketControlMessage(oob[:oobn]); perr == nil {
			for i := range msgs {
				if got, perr := syscall.ParseUnixRights(&msgs[i]); perr == nil {
					fds = append(fds, got...)
				}
			}
		}
	}
	defer func() {
		if err != nil {
			CloseFDs(fds)
			fds = nil
		}
	}()
	if err != nil {
		return fds, err
	}
	if flags&syscall.MSG_CTRUNC != 0 {
		return fds, errors.New("local socket: too many descriptors with one frame")
	}
	for n < 4 {
		k, err := c.Read(buf[n:4])
		if err != nil {
			return fds, err
		}
		n += k
	}
	size := int(binary.BigEndian.Uint32(buf))
	if size < 1 || size > MaxLocalFrame {
		return fds, fmt.Errorf("local socket: a frame of %d bytes is outside 1..%d", size, MaxLocalFrame)
	}
	if n > 4+size {
		return fds, errors.New("local socket: bytes after a frame before its answer")
	}
	if _, err := io.ReadFull(c, buf[n:4+size]); err != nil {
		return fds, err
	}
	if err := json.Unmarshal(buf[4:4+size], v); err != nil {
		return fds, fmt.Errorf("local socket: bad frame: %w", err)
	}
	return fds, nil
}

// CloseFDs closes descriptors received with a frame.
func CloseFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// Local asks the agent for its local socket (GET /v1/fs/local). An agent
// without one (an older release, or a data dir path too long for a socket)
// answers an *Error with Status 404.
func (c *Client) Local(ctx context.Context) (LocalInfo, error) {
	var li LocalInfo
	return li, c.do(ctx, "GET", "/v1/fs/local", nil, &li)
}

// localMinBlock is the shortest block sent through a local socket; a
// shorter one goes over HTTP. Handing the file over costs the agent's
// socket answer (asked once per agent and put), a connection and two
// round trips per block, while a small block's bytes cost little to send:
// through the socket, a put of 1,000 files of about 1 KB (e2e
// BenchmarkSmallFiles) stored 52–59 files/s, over HTTP 62–75. 32 KiB is
// half the smallest block size a put may ask for (blockstore.MinBlockSize,
// 64 KiB; blocks end at a line, so they are often a little shorter).
const localMinBlock = 32 << 10

// localTimeout bounds asking an agent for its local socket, connecting
// to it and its answer to the hello.
const localTimeout = 5 * time.Second

// localPuts sends the blocks of one put to the agents of this host through
// their local sockets, passing the file itself; nil when the file is not a
// regular *os.File. Every agent is asked for its socket once, on its first
// block; one whose socket is missing, refuses the connection, answers as
// another agent or breaks a connection is sent the rest over HTTP.
type localPuts struct {
	file *os.File
	fd   int
	mu   sync.Mutex
	by   map[*Client]*localAgent
}

type localAgent struct {
	once sync.Once
	mu   sync.Mutex
	info LocalInfo // Socket "": not to be used
}

func newLocalPuts(f io.ReaderAt) *localPuts {
	file, ok := f.(*os.File)
	if !ok {
		return nil
	}
	if st, err := file.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil
	}
	rc, err := file.SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	if rc.Control(func(u uintptr) { fd = int(u) }) != nil || fd < 0 {
		return nil
	}
	return &localPuts{file: file, fd: fd, by: map[*Client]*localAgent{}}
}

// agent returns c's socket, asking c for it the first time; "" for none.
func (lp *localPuts) agent(ctx context.Context, c *Client) *localAgent {
	lp.mu.Lock()
	a := lp.by[c]
	if a == nil {
		a = &localAgent{}
		lp.by[c] = a
	}
	lp.mu.Unlock()
	a.once.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, localTimeout)
		defer cancel()
		li, err := c.Local(ctx)
		if err != nil || li.Socket == "" || li.Instance == "" || (c.name != "" && li.Name != c.name) {
			return
		}
		if _, err := os.Stat(li.Socket); err != nil {
			return // not on this host, or not ours to reach
		}
		a.mu.Lock()
		a.info = li
		a.mu.Unlock()
	})
	return a
}

// summed reports whether a block of n bytes is worth its chunk sums as
// it is hashed: when it may go through a local socket, which c, the
// agent in use, has (blocks owned by another host go over HTTP, and the
// agent of this host, if any, is the one in use).
func (lp *localPuts) summed(ctx context.Context, c *Client, n int64) bool {
	if lp == nil || n < localMinBlock || n > localSummedMax {
		return false
	}
	return lp.agent(ctx, c).socket().Socket != ""
}

func (a *localAgent) socket() LocalInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.info
}

func (a *localAgent) drop() {
	a.mu.Lock()
	a.info = LocalInfo{}
	a.mu.Unlock()
}

// put sends block i (n bytes at off) of p to c through c's local socket.
// sent is false when it could not be sent that way, or is shorter than
// localMinBlock: the caller sends it over HTTP. An agent's refusal is an *Error, as over HTTP.
func (lp *localPuts) put(ctx context.Context, c *Client, p string, i int, off, n int64, repl int, bs *blockSums) (ack BlockAck, sent bool, err error) {
	if lp == nil || n < localMinBlock {
		return BlockAck{}, false, nil
	}
	a := lp.agent(ctx, c)
	li := a.socket()
	if li.Socket == "" {
		return BlockAck{}, false, nil
	}
	d := net.Dialer{Timeout: localTimeout}
	nc, err := d.DialContext(ctx, "unix", li.Socket)
	if err != nil {
		a.drop()
		return BlockAck{}, false, nil
	}
	conn := nc.(*net.UnixConn)
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	broken := func() (BlockAck, bool, error) {
		if ctx.Err() != nil {
			return BlockAck{}, true, c.contextError(ctx.Err())
		}
		a.drop()
		return BlockAck{}, false, nil
	}
	// The hello: the same agent as asked over HTTP, or not used.
	conn.SetDeadline(time.Now().Add(localTimeout))
	var hi LocalAnswer
	if err := WriteLocalFrame(conn, LocalHello{Token: c.token}, -1); err != nil {
		return broken()
	}
	fds, err := ReadLocalFrame(conn, &hi)
	CloseFDs(fds)
	if err != nil || hi.Status != 200 || hi.Name != li.Name || hi.Instance != li.Instance {
		return broken()
	}
	// The block: the agent reads it from the file, which may take as long
	// as a block over HTTP.
	conn.SetDeadline(time.Time{})
	req := LocalPut{Path: p, Index: i, Replication: repl, Offset: off, Size: n}
	if bs != nil && bs.sums != nil {
		req.ID, req.Chunk, req.Sums = bs.id, LocalSumChunk, bs.sums
	}
	if err := WriteLocalFrame(conn, req, lp.fd); err != nil {
		return broken()
	}
	var ans LocalAnswer
	fds, err = ReadLocalFrame(conn, &ans)
	CloseFDs(fds)
	switch {
	case err != nil:
		return broken()
	case ans.Status != 200:
		if ans.Error == "" {
			ans.Error = fmt.Sprintf("agent %s refused block %d on its local socket (status %d)", c, i, ans.Status)
		}
		return BlockAck{}, true, &Error{Status: ans.Status, Message: ans.Error, LowDisk: ans.LowDisk}
	case ans.Ack == nil:
		return broken()
	}
	return *ans.Ack, true, nil
}
