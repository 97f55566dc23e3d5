package secret

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestGenerateParseRoundTrip(t *testing.T) {
	s := Generate()
	p, err := Parse(s.String() + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.GossipKey(), s.GossipKey()) || p.APIToken() != s.APIToken() {
		t.Fatal("parsed secret derives different keys")
	}
}

func TestDerivedKeysDistinct(t *testing.T) {
	s := Generate()
	if len(s.GossipKey()) != 32 || len(s.NetworkKey()) != 32 {
		t.Fatal("wrong key lengths")
	}
	if bytes.Equal(s.GossipKey(), s.NetworkKey()) {
		t.Fatal("gossip and network keys are equal")
	}
	if other := Generate(); other.APIToken() == s.APIToken() {
		t.Fatal("two secrets share a token")
	}
	if !s.CheckToken(s.APIToken()) || s.CheckToken("nope") || s.CheckToken("") {
		t.Fatal("CheckToken wrong")
	}
}

func TestZero(t *testing.T) {
	var s Secret
	if !s.IsZero() || s.GossipKey() != nil || s.NetworkKey() != nil || s.APIToken() != "" || !s.CheckToken("x") {
		t.Fatal("zero secret should derive nothing and accept any token")
	}
}

func TestMalformed(t *testing.T) {
	for _, in := range []string{"", "   \n", "not base64!!", "AAAA", "c2hvcnQ="} {
		if _, err := Parse(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%q) = %v, want ErrMalformed", in, err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	s := Generate()
	os.WriteFile(good, []byte(s.String()+"\n"), 0o600)
	if got, err := Load(good); err != nil || got.APIToken() != s.APIToken() {
		t.Fatalf("Load good: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("hello world"), 0o600)
	if _, err := Load(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Load bad = %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load missing = %v", err)
	}
}
