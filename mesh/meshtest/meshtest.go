// Package meshtest is a network of named nodes for tests of protocols built
// on mesh streams, without libp2p: each stream is a TCP connection on
// 127.0.0.1, so half-close, deadlines and resets behave as on a real network.
package meshtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"shoal.dev/shoal/mesh"
)

// Network is a set of named nodes that can dial each other.
type Network struct {
	mu    sync.Mutex
	nodes map[string]*Node
}

// New returns an empty network.
func New() *Network { return &Network{nodes: map[string]*Node{}} }

// Node is one member of a Network.
type Node struct {
	net      *Network
	name     string
	ln       net.Listener
	mu       sync.Mutex
	handlers map[string]mesh.StreamHandler
	down     bool
	wg       sync.WaitGroup
}

// Add starts a node listening on 127.0.0.1.
func (n *Network) Add(name string) (*Node, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	node := &Node{net: n, name: name, ln: ln, handlers: map[string]mesh.StreamHandler{}}
	n.mu.Lock()
	n.nodes[name] = node
	n.mu.Unlock()
	node.wg.Add(1)
	go node.accept()
	return node, nil
}

// Name is the node's name.
func (nd *Node) Name() string { return nd.name }

// Handle registers a protocol handler.
func (nd *Node) Handle(protocol string, h mesh.StreamHandler) {
	nd.mu.Lock()
	nd.handlers[protocol] = h
	nd.mu.Unlock()
}

// SetDown makes the node refuse new streams (as if it died) or accept them
// again.
func (nd *Node) SetDown(down bool) {
	nd.mu.Lock()
	nd.down = down
	nd.mu.Unlock()
}

// Close stops the node and waits for its handlers to return.
func (nd *Node) Close() {
	nd.ln.Close()
	nd.wg.Wait()
}

func (nd *Node) accept() {
	defer nd.wg.Done()
	for {
		c, err := nd.ln.Accept()
		if err != nil {
			return
		}
		nd.wg.Add(1)
		go func() {
			defer nd.wg.Done()
			nd.serve(c.(*net.TCPConn))
		}()
	}
}

func (nd *Node) serve(c *net.TCPConn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		c.Close()
		return
	}
	from, proto, _ := strings.Cut(strings.TrimSpace(line), " ")
	nd.mu.Lock()
	h, down := nd.handlers[proto], nd.down
	nd.mu.Unlock()
	if h == nil || down {
		c.SetLinger(0)
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	h(from, &stream{TCPConn: c, r: br})
}

// Dial opens a stream from this node to another; it implements mesh.Dialer.
func (nd *Node) Dial(ctx context.Context, to mesh.NodeName, protocol string) (mesh.Stream, error) {
	nd.net.mu.Lock()
	peer := nd.net.nodes[to]
	nd.net.mu.Unlock()
	if peer == nil {
		return nil, fmt.Errorf("meshtest: no node %q", to)
	}
	peer.mu.Lock()
	down := peer.down
	peer.mu.Unlock()
	if down {
		return nil, fmt.Errorf("meshtest: node %q is down", to)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", peer.ln.Addr().String())
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(c, "%s %s\n", nd.name, protocol); err != nil {
		c.Close()
		return nil, err
	}
	tc := c.(*net.TCPConn)
	return &stream{TCPConn: tc, r: bufio.NewReader(tc)}, nil
}

type stream struct {
	*net.TCPConn
	r *bufio.Reader
}

func (s *stream) Read(p []byte) (int, error) { return s.r.Read(p) }

func (s *stream) Reset() error {
	s.TCPConn.SetLinger(0)
	return s.TCPConn.Close()
}
