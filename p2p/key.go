package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// maxKeyFileSize bounds what loadOrCreateKey reads: a marshalled Ed25519 key
// is 68 bytes, an RSA one a few KiB.
const maxKeyFileSize = 64 << 10

// loadOrCreateKey returns the identity key stored at path, creating a new
// Ed25519 key there if the file does not exist. An empty path gives a fresh
// key that is not stored. A file that exists but does not hold a key is an
// error wrapping ErrBadKeyFile, and is left as it is.
func loadOrCreateKey(path string, log *slog.Logger) (crypto.PrivKey, error) {
	if path == "" {
		sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate identity key: %w", err)
		}
		return sk, nil
	}
	sk, err := readKey(path, log)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return sk, err
	}
	return createKey(path, log)
}

// readKey reads and parses the key file at path.
func readKey(path string, log *slog.Logger) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read identity key: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read identity key: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrBadKeyFile, path)
	}
	if info.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than any key", ErrBadKeyFile, path, info.Size())
	}
	if info.Mode().Perm()&0o077 != 0 {
		log.Warn("p2p identity key file is readable by others", "path", path, "mode", info.Mode().Perm().String())
	}
	b := make([]byte, info.Size())
	if _, err := f.ReadAt(b, 0); err != nil && info.Size() > 0 {
		return nil, fmt.Errorf("read identity key %s: %w", path, err)
	}
	sk, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadKeyFile, path, err)
	}
	return sk, nil
}

// createKey makes a new Ed25519 key and stores it at path. The key is
// written to a temporary file in the same directory and then hard-linked
// into place, so a crash never leaves a half-written key file and a key file
// made meanwhile by someone else is never overwritten (it is read instead).
func createKey(path string, log *slog.Logger) (crypto.PrivKey, error) {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate identity key: %w", err)
	}
	b, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("marshal identity key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create identity key directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".p2p-key-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("create identity key: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	_, werr := tmp.Write(b)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("write identity key: %w", werr)
	}
	if err := os.Link(tmpName, path); errors.Is(err, fs.ErrExist) {
		return readKey(path, log)
	} else if err != nil {
		// No hard links on this file system: create the file exclusively.
		if err := writeNewFile(path, b); errors.Is(err, fs.ErrExist) {
			return readKey(path, log)
		} else if err != nil {
			return nil, fmt.Errorf("store identity key: %w", err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new directory entry durable; best effort
		d.Close()
	}
	log.Info("created p2p identity key", "path", path)
	return sk, nil
}

// writeNewFile creates path (mode 0600), failing if it exists, and writes b
// to it. If writing fails it removes the file it made.
func writeNewFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}
