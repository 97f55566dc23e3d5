package e2e

import (
	"bufio"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestMakeRelease runs `make release` for the one platform it can run
// (linux/amd64 or linux/arm64), and checks that the binary is static, has the
// version stamped in and matches its SHA256SUMS line. The other platforms
// are the same command with other GOOS/GOARCH. It rebuilds everything
// (-trimpath, no cgo), so -short skips it.
func TestMakeRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: make release rebuilds every package")
	}
	if runtime.GOOS != "linux" {
		t.Skip("checks an ELF binary; runs on linux")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	dist := t.TempDir()
	const version = "v9.9.9-releasetest"
	platform := "linux/" + runtime.GOARCH
	cmd := exec.Command("make", "release", "PLATFORMS="+platform, "DIST="+dist, "VERSION="+version)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	name := "shoal-" + version + "-linux-" + runtime.GOARCH
	bin := filepath.Join(dist, name)

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (program header %v)", name, p.Type)
		}
	}
	f.Close()

	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "shoal "+version+" ") {
		t.Errorf("%s --version = %q, %v; want it to start with %q", name, out, err, "shoal "+version+" ")
	}

	sums, err := os.Open(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer sums.Close()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	var lines int
	sc := bufio.NewScanner(sums)
	for sc.Scan() {
		lines++
		want, file, _ := strings.Cut(sc.Text(), "  ")
		if file != name || want != hex.EncodeToString(sum[:]) {
			t.Errorf("SHA256SUMS line %q; want %x  %s", sc.Text(), sum, name)
		}
	}
	if lines != 1 {
		t.Errorf("SHA256SUMS has %d lines, want 1", lines)
	}
}
