// Package mesh holds the few types that Shoal's data-plane packages share
// without importing each other: node names and the stream a peer-to-peer
// protocol runs over. It imports nothing of Shoal's.
package mesh

import (
	"context"
	"io"
	"time"
)

// NodeName is a member's name in the cluster: unique, stable across restarts,
// and the key the ring places things by.
type NodeName = string

// Stream is one bidirectional byte stream to a peer, such as a libp2p stream.
// Reads and writes may run in two goroutines at once; nothing else is safe to
// call concurrently.
type Stream interface {
	io.Reader
	io.Writer
	// Close closes both directions gracefully.
	Close() error
	// CloseWrite tells the peer that nothing more will be written; reads may
	// go on.
	CloseWrite() error
	// Reset aborts the stream in both directions; the peer sees an error.
	Reset() error
	// SetDeadline bounds every pending and future Read and Write.
	SetDeadline(t time.Time) error
}

// Dialer opens a stream to a named member speaking the given protocol ID,
// such as "/shoal/block/1".
type Dialer interface {
	Dial(ctx context.Context, node NodeName, protocol string) (Stream, error)
}

// DialerFunc adapts a function to a Dialer.
type DialerFunc func(ctx context.Context, node NodeName, protocol string) (Stream, error)

// Dial calls f.
func (f DialerFunc) Dial(ctx context.Context, node NodeName, protocol string) (Stream, error) {
	return f(ctx, node, protocol)
}

// StreamHandler serves one inbound stream from the named member. It owns the
// stream and must close or reset it before returning.
type StreamHandler func(from NodeName, s Stream)
