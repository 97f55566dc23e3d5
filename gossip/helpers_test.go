package gossip

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

// eventually waits until cond holds, checking every 10ms, and fails the
// test if it does not within d. It waits on a ticker, never a bare sleep,
// and returns as soon as cond is true.
func eventually(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline.C:
			if cond() {
				return
			}
			t.Fatalf("after %v: "+format, append([]any{d}, args...)...)
		}
	}
}

// receive waits up to d for a value on ch that satisfies match, discarding
// the others, and fails the test if none comes or ch closes.
func receive[T any](t testing.TB, ch <-chan T, d time.Duration, match func(T) bool, what string) T {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case v, ok := <-ch:
			if !ok {
				t.Fatalf("channel closed while waiting for %s", what)
			}
			if match(v) {
				return v
			}
		case <-deadline.C:
			t.Fatalf("no %s within %v", what, d)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogger returns a logger that keeps everything in memory and prints it
// only if the test fails. (memberlist may log after Shutdown returns, so
// logging straight to t.Log could outlive the test.) GOSSIP_TEST_DEBUG=1
// keeps debug lines too.
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("GOSSIP_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	buf := &lockedBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level}))
}

// fakeClock is an injectable clock that only moves when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// rwPair reads from r and discards writes.
type rwPair struct{ r io.Reader }

func (p *rwPair) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *rwPair) Write(b []byte) (int, error) { return len(b), nil }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
