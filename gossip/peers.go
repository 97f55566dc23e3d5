package gossip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The peers file (Config.PeersFile) keeps the last known gossip address of
// every member this node knows, alive or failed, so that a restarted node
// finds the cluster again even when its --join addresses are gone, and
// keeps reconnecting to members that failed before the restart. It is a
// small JSON document:
//
//	{"version": 1, "members": [{"name": "n2", "addr": "10.0.0.2:7946",
//	  "failed_at": "2026-12-01T20:00:00Z"}, ...]}
//
// failed_at is absent for a member that was alive. Members that left are
// not kept. The file is replaced atomically (write, fsync, rename).
const (
	peersFileVersion = 1
	// maxPeersFile bounds the file read back: far above what any cluster
	// writes (about 100 bytes a member), checked before reading it whole.
	maxPeersFile = 16 << 20
)

// peerEntry is one member in the peers file.
type peerEntry struct {
	Name     string    `json:"name"`
	Addr     string    `json:"addr"`
	FailedAt time.Time `json:"failed_at,omitzero"`
}

type peersDoc struct {
	Version int         `json:"version"`
	Members []peerEntry `json:"members"`
}

// loadPeers reads the peers file. A missing file is no error: the node has
// never run. A file too big, malformed or of another version is.
func loadPeers(path string) ([]peerEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("peers file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("peers file: %w", err)
	}
	if st.Size() > maxPeersFile {
		return nil, fmt.Errorf("peers file %s: %d bytes exceeds the limit of %d", path, st.Size(), maxPeersFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxPeersFile+1))
	if err != nil {
		return nil, fmt.Errorf("peers file: %w", err)
	}
	var doc peersDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("peers file %s is malformed: %w", path, err)
	}
	if doc.Version != peersFileVersion {
		return nil, fmt.Errorf("peers file %s has version %d; this build reads version %d", path, doc.Version, peersFileVersion)
	}
	for _, p := range doc.Members {
		if p.Name == "" || p.Addr == "" {
			return nil, fmt.Errorf("peers file %s is malformed: a member without a name or address", path)
		}
	}
	return doc.Members, nil
}

// savePeers replaces the peers file with peers, sorted by name.
func savePeers(path string, peers []peerEntry) error {
	slices.SortFunc(peers, func(a, b peerEntry) int { return strings.Compare(a.Name, b.Name) })
	data, err := json.MarshalIndent(peersDoc{Version: peersFileVersion, Members: peers}, "", "  ")
	if err != nil {
		return fmt.Errorf("peers file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".peers-*")
	if err != nil {
		return fmt.Errorf("peers file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("peers file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("peers file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("peers file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("peers file: %w", err)
	}
	return nil
}
