// Package secret parses the cluster secret and derives from it the keys each
// layer uses: memberlist encryption, the libp2p private network and the HTTP
// API token. One secret keys all three, so a node without it can neither
// gossip, move data nor submit work.
package secret

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrMalformed is returned (wrapped) by Parse and Load for text that is not
// a secret.
var ErrMalformed = errors.New("malformed secret")

// Secret is a parsed cluster secret. The zero value means "no secret".
type Secret struct {
	raw []byte
}

// Generate returns a new random 32-byte secret.
func Generate() Secret {
	raw := make([]byte, 32)
	rand.Read(raw) // never fails on supported platforms
	return Secret{raw: raw}
}

// Parse reads a secret written as base64 (standard or URL alphabet, as
// `shoal keygen` prints) of 16, 24 or 32 bytes. Surrounding white space is
// ignored.
func Parse(text string) (Secret, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return Secret{}, fmt.Errorf("%w: empty", ErrMalformed)
	}
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return Secret{}, fmt.Errorf("%w: not base64 (generate one with `shoal keygen`)", ErrMalformed)
	}
	switch len(raw) {
	case 16, 24, 32:
	default:
		return Secret{}, fmt.Errorf("%w: %d bytes, want 16, 24 or 32 (generate one with `shoal keygen`)", ErrMalformed, len(raw))
	}
	return Secret{raw: raw}, nil
}

// Load reads a secret file holding what Parse accepts.
func Load(path string) (Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Secret{}, fmt.Errorf("secret file: %w", err)
	}
	s, err := Parse(string(b))
	if err != nil {
		return Secret{}, fmt.Errorf("secret file %s: %w", path, err)
	}
	return s, nil
}

// IsZero reports whether there is no secret.
func (s Secret) IsZero() bool { return len(s.raw) == 0 }

// String returns the secret in the form Parse accepts.
func (s Secret) String() string { return base64.StdEncoding.EncodeToString(s.raw) }

func (s Secret) derive(label string, n int) []byte {
	if s.IsZero() {
		return nil
	}
	k, err := hkdf.Key(sha256.New, s.raw, nil, "shoal "+label, n)
	if err != nil {
		panic(err) // only for n beyond HKDF's limit, which no caller asks
	}
	return k
}

// GossipKey is the 32-byte memberlist encryption key, nil without a secret.
func (s Secret) GossipKey() []byte { return s.derive("gossip v1", 32) }

// NetworkKey is the 32-byte libp2p private-network key, nil without a secret.
func (s Secret) NetworkKey() []byte { return s.derive("pnet v1", 32) }

// ConsoleKey is the 32-byte key that signs web console sessions, so that
// every agent of the cluster accepts a session any of them issued; nil
// without a secret.
func (s Secret) ConsoleKey() []byte { return s.derive("console session v1", 32) }

// APIToken is the bearer token the HTTP API requires, "" without a secret.
func (s Secret) APIToken() string {
	k := s.derive("api token v1", 24)
	if k == nil {
		return ""
	}
	return hex.EncodeToString(k)
}

// CheckToken reports, in constant time, whether token is this secret's API
// token. Without a secret every token is accepted.
func (s Secret) CheckToken(token string) bool {
	if s.IsZero() {
		return true
	}
	return hmac.Equal([]byte(token), []byte(s.APIToken()))
}
