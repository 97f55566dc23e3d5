package peer

import (
	"fmt"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/client"
	"shoal.dev/shoal/tasklog"
)

// The API answers with package client's wire types: these turn the file
// system's records into them, and a commit request back.

func wireFile(f blockstore.FileInfo) client.FileInfo {
	return client.FileInfo{Path: f.Path, Size: f.Size, ModTime: f.ModTime, BlockSize: f.BlockSize,
		Replication: f.Replication, Blocks: f.Blocks, Manifest: f.Manifest.String()}
}

func wireFiles(fs []blockstore.FileInfo) []client.FileInfo {
	out := make([]client.FileInfo, len(fs))
	for i, f := range fs {
		out[i] = wireFile(f)
	}
	return out
}

func wireEntries(es []blockstore.Entry) []client.Entry {
	out := make([]client.Entry, len(es))
	for i, e := range es {
		out[i] = client.Entry{Name: e.Name, Path: e.Path, Dir: e.Dir, Files: e.Files, Size: e.Size}
		if e.File != nil {
			f := wireFile(*e.File)
			out[i].File = &f
		}
	}
	return out
}

func wireLocations(ls []blockstore.BlockLocation) []client.BlockLocation {
	out := make([]client.BlockLocation, len(ls))
	for i, l := range ls {
		out[i] = client.BlockLocation(l)
	}
	return out
}

func wireAck(a blockstore.BlockAck) client.BlockAck {
	return client.BlockAck{ID: a.ID.String(), Size: a.Size, Copies: a.Copies, Replication: a.Replication}
}

func wireConflicts(cs []blockstore.Conflict) []client.Conflict {
	out := make([]client.Conflict, len(cs))
	for i, c := range cs {
		out[i] = client.Conflict{Path: c.Path, Copy: c.Copy, Winner: wireFile(c.Winner), Loser: wireFile(c.Loser),
			WinnerVersion: client.WriteVersion{HLC: c.WinnerVersion.HLC, Node: c.WinnerVersion.Node},
			LoserVersion:  client.WriteVersion{HLC: c.LoserVersion.HLC, Node: c.LoserVersion.Node},
			DetectedBy:    c.DetectedBy}
	}
	return out
}

func wireIO(io *tasklog.IO) *client.AttemptIO {
	if io == nil {
		return nil
	}
	w := client.AttemptIO(*io)
	return &w
}

// commitRequest is the file system's form of a commit; a block ID that is
// not one is an error.
func commitRequest(req client.CommitRequest) (blockstore.CommitRequest, error) {
	out := blockstore.CommitRequest{Path: req.Path, BlockSize: req.BlockSize, Replication: req.Replication,
		Overwrite: req.Overwrite, Blocks: make([]blockstore.BlockRef, len(req.Blocks))}
	for i, b := range req.Blocks {
		id, err := blockstore.ParseID(b.ID)
		if err != nil {
			return out, fmt.Errorf("block %d: %w", i, err)
		}
		out.Blocks[i] = blockstore.BlockRef{ID: id, Size: b.Size}
	}
	return out, nil
}
