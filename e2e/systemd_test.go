package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSystemdUnit checks deploy/systemd/shoal.service with
// systemd-analyze verify (the ExecStart binary swapped for the one under
// test, which verify requires to exist), failing on any complaint, and
// checks the directives the deployment relies on.
func TestSystemdUnit(t *testing.T) {
	src := filepath.Join(repoRoot, "deploy", "systemd", "shoal.service")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)

	dirs := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			dirs[k] = v
		}
	}
	want := map[string]string{
		"User":            "shoal",
		"StateDirectory":  "shoal",
		"Restart":         "on-failure",
		"KillSignal":      "SIGTERM",
		"ExecStart":       "/usr/local/bin/shoal agent --config /etc/shoal/shoal.toml",
		"LimitNOFILE":     "65536",
		"NoNewPrivileges": "yes",
	}
	for k, v := range want {
		if dirs[k] != v {
			t.Errorf("%s=%q, want %q", k, dirs[k], v)
		}
	}
	// The agent leaves within 10 s of SIGTERM (cli/agent.go); systemd
	// must give it longer before it kills.
	if d, err := time.ParseDuration(dirs["TimeoutStopSec"] + "s"); err != nil || d <= 10*time.Second {
		t.Errorf("TimeoutStopSec=%q: want more than the agent's 10 s leave", dirs["TimeoutStopSec"])
	}
	sysusers, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "systemd", "shoal.sysusers"))
	if err != nil || !strings.Contains(string(sysusers), "u shoal ") {
		t.Errorf("shoal.sysusers does not create the user shoal: %v", err)
	}

	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed: the unit's directives are checked, not the unit")
	}
	dir := t.TempDir()
	test := filepath.Join(dir, "shoal.service")
	if err := os.WriteFile(test, []byte(strings.ReplaceAll(unit, "/usr/local/bin/shoal", shoalBin)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("systemd-analyze", "verify", test)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
