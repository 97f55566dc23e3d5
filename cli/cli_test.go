package cli

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
)

func TestPermuteArgs(t *testing.T) {
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{}, nil)
	cases := []struct{ in, want []string }{
		{[]string{"shoal", "fs", "put", "a", "/b", "--block-size", "1MB", "--force"},
			[]string{"shoal", "fs", "put", "--block-size", "1MB", "--force", "--", "a", "/b"}},
		{[]string{"shoal", "--addr", "x", "fs", "put", "-", "/b", "-r", "2"},
			[]string{"shoal", "--addr", "x", "fs", "put", "-r", "2", "--", "-", "/b"}},
		{[]string{"shoal", "fs", "rm", "/x", "-r"},
			[]string{"shoal", "fs", "rm", "-r", "--", "/x"}},
		{[]string{"shoal", "fs", "cat", "--", "-weird-name"},
			[]string{"shoal", "fs", "cat", "--", "-weird-name"}},
		{[]string{"shoal", "members"}, []string{"shoal", "members"}},
		{[]string{"shoal"}, []string{"shoal"}},
	}
	for _, c := range cases {
		if got := permuteArgs(app, c.in); !slices.Equal(got, c.want) {
			t.Errorf("permuteArgs(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{"0": 0, "65536": 65536, "64K": 64 << 10, "64KB": 64 << 10, "1MiB": 1 << 20, "128MB": 128 << 20, "2g": 2 << 30, " 1T ": 1 << 40}
	for in, want := range good {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MB", "-1", "1.5M", "12Q", "99999999999999T"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	cases := map[string][]string{
		"unknown flag":    {"shoal", "members", "--bogus"},
		"unknown command": {"shoal", "bogus"},
		"missing args":    {"shoal", "fs", "put", "onlyone"},
		"bad block size":  {"shoal", "fs", "put", "a", "/b", "--block-size", "huge"},
		"bad replication": {"shoal", "fs", "put", "a", "/b", "--replication", "0"},
		"bad addr":        {"shoal", "members", "--addr", "ftp://x"},
	}
	for name, args := range cases {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != 2 || len(lines) != 1 || !strings.HasPrefix(lines[0], "shoal: ") {
			t.Errorf("%s: exit %d, stderr %q", name, code, stderr.String())
		}
	}
}

// TestUsageNamesTheCommandOnce: a usage line names the command as typed,
// "shoal fs put", not "shoal shoal fs put".
func TestUsageNamesTheCommandOnce(t *testing.T) {
	var stdout, stderr bytes.Buffer
	run(context.Background(), []string{"shoal", "fs", "put", "onlyone"}, &stdout, &stderr)
	if got := stderr.String(); !strings.Contains(got, "usage: shoal fs put ") || strings.Contains(got, "shoal shoal") {
		t.Fatalf("usage line %q, want it to start with \"usage: shoal fs put \"", got)
	}
}

func TestKeygenVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"shoal", "keygen"}, &stdout, &stderr); code != 0 || len(strings.TrimSpace(stdout.String())) != 44 {
		t.Fatalf("keygen: %d %q %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"shoal", "version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "shoal ") {
		t.Fatalf("version: %d %q", code, stdout.String())
	}
}

// TestCountersChecksumHex: CHECKSUM prints in hex, as teravalidate reads
// it, negative counters included; other counters in decimal.
func TestCountersChecksumHex(t *testing.T) {
	var b bytes.Buffer
	printCounters(&b, map[string]int64{"CHECKSUM": -2, "ROWS": 12})
	got := map[string]string{}
	for _, line := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			got[f[0]] = f[1]
		}
	}
	if got["CHECKSUM"] != "fffffffffffffffe" || got["ROWS"] != "12" {
		t.Fatalf("counters:\n%s", b.String())
	}
}
