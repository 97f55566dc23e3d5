package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"shoal.dev/shoal/mesh"
)

// PingProtocol is the protocol ID of Shoal's ping, which every Host serves
// (Handle with this ID replaces that). The client writes one msgpack
// pingRequest and closes its write side; the server answers one msgpack
// pingReply and closes the stream. Each message is at most 1 KiB.
const PingProtocol = "/shoal/ping/1"

// maxPingMsg bounds a ping request or reply on the wire.
const maxPingMsg = 1024

// PingResult is what a ping learned about a peer.
type PingResult struct {
	// RTT is the time from opening the ping stream (connecting first if
	// needed) to reading the reply.
	RTT time.Duration
	// Name is the node name the peer answered with (its Config.Name).
	Name string
	// PeerID is the peer's ID, as it reported it and as the handshake proved.
	PeerID string
}

// pingRequest is the message a ping client sends.
type pingRequest struct {
	Nonce [16]byte  `msgpack:"nonce"`
	Sent  time.Time `msgpack:"sent"`
}

// pingReply is the message a ping server answers with.
type pingReply struct {
	Nonce  [16]byte `msgpack:"nonce"`
	Name   string   `msgpack:"name"`
	PeerID string   `msgpack:"peer_id"`
}

// Ping checks that the peer answers on PingProtocol and measures the round
// trip. The whole ping is bounded by ctx and, if ctx has no deadline, by
// Config.PingTimeout. Errors wrap those of NewStream, the context's error, or
// describe a malformed reply.
func (h *Host) Ping(ctx context.Context, peerID string) (PingResult, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.pingTimeout)
		defer cancel()
	}
	start := time.Now()
	s, err := h.newStream(ctx, peerID, PingProtocol)
	if err != nil {
		return PingResult{}, fmt.Errorf("p2p: ping: %w", err)
	}
	// Reset the stream if ctx ends first; the deadline covers the same
	// ground but cancellation has no deadline.
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	deadline, _ := ctx.Deadline()
	if err := s.SetDeadline(deadline); err != nil {
		s.Reset()
		return PingResult{}, fmt.Errorf("p2p: ping %s: set deadline: %w", peerID, err)
	}

	req := pingRequest{Sent: time.Now()}
	rand.Read(req.Nonce[:]) // never fails
	var rep pingReply
	err = writeMsg(s, &req)
	if err == nil {
		err = s.CloseWrite()
	}
	if err == nil {
		err = readMsg(s, &rep)
	}
	rtt := time.Since(start)
	if err != nil {
		s.Reset()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return PingResult{}, fmt.Errorf("p2p: ping %s: %w", peerID, err)
	}
	s.Close()
	remote := s.Conn().RemotePeer().String()
	switch {
	case rep.Nonce != req.Nonce:
		return PingResult{}, fmt.Errorf("p2p: ping %s: reply does not echo our nonce", peerID)
	case rep.PeerID != remote:
		return PingResult{}, fmt.Errorf("p2p: ping %s: reply claims peer ID %q", peerID, rep.PeerID)
	}
	return PingResult{RTT: rtt, Name: rep.Name, PeerID: rep.PeerID}, nil
}

// servePing answers one ping stream. A malformed, oversize or late request
// resets the stream.
func (h *Host) servePing(from string, s mesh.Stream) {
	if err := h.answerPing(s); err != nil {
		h.log.Debug("bad ping", "peer_id", from, "err", err)
		s.Reset()
		return
	}
	s.Close()
}

func (h *Host) answerPing(s mesh.Stream) error {
	if err := s.SetDeadline(time.Now().Add(h.pingTimeout)); err != nil {
		return err
	}
	var req pingRequest
	if err := readMsg(s, &req); err != nil {
		return err
	}
	return writeMsg(s, &pingReply{Nonce: req.Nonce, Name: h.name, PeerID: h.ID()})
}

// writeMsg writes v as one msgpack message.
func writeMsg(w io.Writer, v any) error {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// readMsg reads r to EOF and decodes it as exactly one msgpack message of at
// most maxPingMsg bytes into v.
func readMsg(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, maxPingMsg+1))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if len(b) > maxPingMsg {
		return fmt.Errorf("message longer than %d bytes", maxPingMsg)
	}
	if len(b) == 0 {
		return errors.New("empty message")
	}
	br := bytes.NewReader(b)
	if err := msgpack.NewDecoder(br).Decode(v); err != nil {
		return fmt.Errorf("malformed message: %w", err)
	}
	if br.Len() != 0 {
		return fmt.Errorf("malformed message: %d bytes after it", br.Len())
	}
	return nil
}
