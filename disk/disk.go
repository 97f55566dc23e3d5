// Package disk keeps a node's writes from filling its file systems: a
// Guard admits a write only when, after it, at least the reserve stays
// free (checked at the door, before any byte is written), and turns a real
// ENOSPC or EDQUOT into the same clear error. It imports nothing of
// Shoal's.
package disk

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// ErrFull is what every refusal and every out-of-space failure wraps:
// compare with errors.Is.
var ErrFull = errors.New("disk full")

// Usage is the space of one file system as statfs reports it to an
// unprivileged writer.
type Usage struct {
	Free  int64 // bytes available to the agent
	Total int64 // size of the file system
}

// Statfs reports the usage of the file system holding path.
type Statfs func(path string) (Usage, error)

// SysStatfs is the operating system's statfs(2).
func SysStatfs(path string) (Usage, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return Usage{}, err
	}
	bs := int64(st.Bsize)
	return Usage{Free: int64(st.Bavail) * bs, Total: int64(st.Blocks) * bs}, nil
}

// Reserve is the free space a node keeps: a number of bytes, or a
// percentage of each file system's size.
type Reserve struct {
	Bytes   int64
	Percent float64 // used instead of Bytes when > 0
	// CapPercent, when > 0, caps Bytes at this percentage of the file
	// system's size (the default's rule for small disks).
	CapPercent float64
}

// DefaultReserve is the reserve of an agent started without --reserve:
// 1 GiB, but at most 5% of the file system (so 5% of one smaller than
// 20 GiB).
var DefaultReserve = Reserve{Bytes: 1 << 30, CapPercent: 5}

// MaxPercent is the largest percentage reserve.
const MaxPercent = 90

// ParseReserve reads a --reserve value (its errors start with the value
// quoted, for the caller to prefix with the flag): "0", a size with an optional
// unit (B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB; all powers of 1024), or
// a percentage of the file system's size ("5%").
func ParseReserve(s string) (Reserve, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || math.IsNaN(v) || v < 0 || v > MaxPercent {
			return Reserve{}, fmt.Errorf("%q: a percentage must be a number from 0 to %d", s, MaxPercent)
		}
		if v == 0 {
			return Reserve{}, nil
		}
		return Reserve{Percent: v}, nil
	}
	n, err := ParseSize(t)
	if err != nil {
		return Reserve{}, fmt.Errorf("%q: %w", s, err)
	}
	return Reserve{Bytes: n}, nil
}

// ParseSize reads a size such as "512MiB", "1G", "4096" (bytes). Units are
// powers of 1024 whether spelled KB or KiB.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToUpper(strings.TrimSpace(t[i:]))
	mult := map[string]int64{"": 1, "B": 1,
		"K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10,
		"M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
		"G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30,
		"T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit %q (want B, KiB, MiB, GiB or TiB)", strings.TrimSpace(t[i:]))
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || v < 0 {
		return 0, errors.New("want a size such as 512MiB, 2GiB or 5%")
	}
	b := v * float64(mult)
	if b > 1<<60 {
		return 0, errors.New("larger than 1 EiB")
	}
	return int64(b), nil
}

// Of is the reserve in bytes on a file system of total bytes.
func (r Reserve) Of(total int64) int64 {
	if r.Percent > 0 {
		return int64(float64(total) * r.Percent / 100)
	}
	if r.CapPercent > 0 {
		return min(r.Bytes, int64(float64(total)*r.CapPercent/100))
	}
	return r.Bytes
}

func (r Reserve) String() string {
	if r.Percent > 0 {
		return strconv.FormatFloat(r.Percent, 'f', -1, 64) + "%"
	}
	if r.CapPercent > 0 {
		return fmt.Sprintf("%s (at most %s%%)", Size(r.Bytes), strconv.FormatFloat(r.CapPercent, 'f', -1, 64))
	}
	return Size(r.Bytes)
}

// Size prints a byte count for people: "512 B", "3.2 MiB", "1 GiB".
func Size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTP"[exp]) + "iB"
}

// FullError says a write was refused, or failed, for want of space. Its
// text names the node, the path and the free space.
type FullError struct {
	Node    string
	Path    string // the directory (or file) written
	Need    int64  // bytes the write asked for; 0 when unknown
	Free    int64  // bytes free on the file system; -1 when unknown
	Reserve int64  // the node's reserve there, in bytes
	// ENOSPC: the file system itself ran out (or the quota was hit);
	// otherwise the write was refused at the door because it would have
	// left less than the reserve free.
	ENOSPC bool
}

func (e *FullError) Error() string {
	free := "unknown free space"
	if e.Free >= 0 {
		free = Size(e.Free) + " free"
	}
	if e.ENOSPC {
		return fmt.Sprintf("%s ran out of disk space writing %s (%s, reserve %s)", e.Node, e.Path, free, Size(e.Reserve))
	}
	need := ""
	if e.Need > 0 {
		need = fmt.Sprintf("; refused a write of %s", Size(e.Need))
	}
	return fmt.Sprintf("%s is low on disk: %s at %s, and it keeps %s free (--reserve)%s", e.Node, free, e.Path, Size(e.Reserve), need)
}

// Is makes errors.Is(err, ErrFull) true.
func (e *FullError) Is(target error) bool { return target == ErrFull }

// Remote is a FullError's text as another node sent it: it wraps ErrFull
// and reads exactly as that node wrote it.
type Remote string

func (r Remote) Error() string { return string(r) }

// Is makes errors.Is(err, ErrFull) true.
func (r Remote) Is(target error) bool { return target == ErrFull }

// IsNoSpace reports whether err is the operating system's "no space left"
// or "quota exceeded".
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Config shapes a Guard.
type Config struct {
	// Node names the node in errors.
	Node string
	// Reserve is the space to keep free on every file system written.
	// The zero Reserve keeps none (only real ENOSPC is reported).
	Reserve Reserve
	// Statfs reports a file system's usage; default SysStatfs. Tests
	// inject one.
	Statfs Statfs
	// OnFull, if set, is called (without locks held, possibly
	// concurrently) with every refusal and every ENOSPC seen, so that the
	// node re-checks its health at once. It must not block.
	OnFull func(*FullError)
}

// Guard admits writes. A nil *Guard admits every write and passes errors
// through unchanged. A Guard is safe for concurrent use.
type Guard struct {
	cfg Config

	mu      sync.Mutex
	pending int64 // bytes admitted and not yet done

	// Refused counts writes refused at the door; NoSpace, real ENOSPC or
	// EDQUOT failures seen through Wrap.
	Refused atomic.Int64
	NoSpace atomic.Int64
}

// New returns a Guard.
func New(cfg Config) *Guard {
	if cfg.Statfs == nil {
		cfg.Statfs = SysStatfs
	}
	return &Guard{cfg: cfg}
}

// Reserve is the guard's reserve.
func (g *Guard) Reserve() Reserve {
	if g == nil {
		return Reserve{}
	}
	return g.cfg.Reserve
}

// Usage reports the file system holding path, and the reserve there in
// bytes.
func (g *Guard) Usage(path string) (Usage, int64, error) {
	if g == nil {
		u, err := SysStatfs(path)
		return u, 0, err
	}
	u, err := g.cfg.Statfs(path)
	if err != nil {
		return Usage{}, 0, err
	}
	return u, g.cfg.Reserve.Of(u.Total), nil
}

// Admit asks to write need bytes under dir. It refuses (a *FullError) when
// the file system's free space, less what other admitted writes still
// hold, would fall below the reserve. On success the caller must call
// done once the bytes are on disk (or the write was given up): until then
// they count against the free space. A statfs that fails admits the
// write: the write itself will then say what is wrong. With the zero
// Reserve every write is admitted: the file system's own ENOSPC, through
// Wrap, is then the only limit.
func (g *Guard) Admit(dir string, need int64) (done func(), err error) {
	if g == nil || g.cfg.Reserve == (Reserve{}) {
		return func() {}, nil
	}
	need = max(need, 0)
	u, err := g.cfg.Statfs(dir)
	if err != nil {
		return func() {}, nil
	}
	reserve := g.cfg.Reserve.Of(u.Total)
	g.mu.Lock()
	if u.Free-g.pending-need < reserve {
		free := u.Free - g.pending
		g.mu.Unlock()
		g.Refused.Add(1)
		e := &FullError{Node: g.cfg.Node, Path: dir, Need: need, Free: max(free, 0), Reserve: reserve}
		g.full(e)
		return nil, e
	}
	g.pending += need
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.pending -= need
			g.mu.Unlock()
		})
	}, nil
}

// FaultError is a write that the disk itself failed (EIO, a read-only
// file system): it names the node and the path.
type FaultError struct {
	Node string
	Path string
	Err  error // the operating system's error
}

func (e *FaultError) Error() string {
	what := "failed"
	switch {
	case errors.Is(e.Err, syscall.EIO):
		what = "failed (I/O error)"
	case errors.Is(e.Err, syscall.EROFS):
		what = "is read-only"
	}
	return fmt.Sprintf("%s: the disk %s writing %s", e.Node, what, e.Path)
}

func (e *FaultError) Unwrap() error { return e.Err }

// Wrap turns an ENOSPC or EDQUOT from writing path into a *FullError
// naming the node, the path and the free space, and an EIO or EROFS into a
// *FaultError; other errors (and nil) pass unchanged.
func (g *Guard) Wrap(err error, path string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EROFS) {
		var fe *FaultError
		if errors.As(err, &fe) {
			return err
		}
		node := "this node"
		if g != nil {
			node = g.cfg.Node
		}
		return &FaultError{Node: node, Path: path, Err: err}
	}
	if !IsNoSpace(err) {
		return err
	}
	var fe *FullError
	if errors.As(err, &fe) {
		return err
	}
	e := &FullError{Path: path, Free: -1, ENOSPC: true}
	if g != nil {
		e.Node = g.cfg.Node
		if u, err := g.cfg.Statfs(path); err == nil {
			e.Free, e.Reserve = u.Free, g.cfg.Reserve.Of(u.Total)
		}
		g.NoSpace.Add(1)
		g.full(e)
	} else if u, err := SysStatfs(path); err == nil {
		e.Free = u.Free
	}
	if e.Node == "" {
		e.Node = "this node"
	}
	return e
}

func (g *Guard) full(e *FullError) {
	if g.cfg.OnFull != nil {
		g.cfg.OnFull(e)
	}
}

// Check is Admit for a write that is about to start and will go through
// Writer: it refuses at the door, before any byte is read or written, a
// write of need bytes that would cross the reserve.
func (g *Guard) Check(dir string, need int64) error {
	done, err := g.Admit(dir, need)
	if err != nil {
		return err
	}
	done()
	return nil
}

// CheckEvery is how many bytes a Writer lets through between two checks
// of the free space: a writer may go this far past the reserve.
const CheckEvery = 1 << 20

// Writer wraps w, a file under dir: its first Write, and then a Write
// every CheckEvery bytes, is admitted first (a refusal writes nothing and
// returns the *FullError), and an ENOSPC from w comes back as a
// *FullError. A nil Guard still turns ENOSPC into a FullError.
func (g *Guard) Writer(w io.Writer, dir string) io.Writer {
	return &guardedWriter{g: g, w: w, dir: dir, since: CheckEvery}
}

type guardedWriter struct {
	g     *Guard
	w     io.Writer
	dir   string
	since int64 // bytes written since the last check
}

func (gw *guardedWriter) Write(p []byte) (int, error) {
	done := func() {}
	if gw.since+int64(len(p)) > CheckEvery {
		var err error
		if done, err = gw.g.Admit(gw.dir, int64(len(p))); err != nil {
			return 0, err
		}
		gw.since = 0
	}
	n, err := gw.w.Write(p)
	done()
	gw.since += int64(n)
	return n, gw.g.Wrap(err, gw.dir)
}
