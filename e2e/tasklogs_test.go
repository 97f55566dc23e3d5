package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"shoal.dev/shoal/clustertest"
)

// TestTaskLogsFromAnotherNode: a streaming mapper writes 50 lines to its
// standard error and fails. The job's error names the task and the
// command that shows its log; `shoal job logs` run against a node other
// than the one that ran the attempt lists the attempts and prints the
// whole stderr (more than the 20 lines the error quotes) and the error.
// Then --follow prints a running attempt's log as it grows and returns
// when the attempt ends.
func TestTaskLogsFromAnotherNode(t *testing.T) {
	e, st := startFSEnv(t, 3)
	url := st["node1"][1]
	in := filepath.Join(e.dir, "in.txt")
	os.WriteFile(in, []byte("one line of input\n"), 0o644)
	e.mustCLI(url, "fs", "put", in, "/in/small.txt")

	mapper := `for i in $(seq 1 50); do echo "stderr line $i of the failing mapper" >&2; done; exit 3`
	r := e.cli(url, "streaming", "-input", "/in/small.txt", "-output", "/fails", "-mapper", mapper, "-reducer", "cat", "-max-attempts", "2")
	if r.code == 0 {
		t.Fatal("the failing streaming job succeeded")
	}
	m := regexp.MustCompile(`its last attempt's log: shoal job logs (job-[a-z0-9-]+) --task (m-000000)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("the job's error names no log command:\n%s", r.stderr)
	}
	id, task := m[1], m[2]

	// The listing, from node1: two failed attempts of m-000000.
	list := e.mustCLI(url, "job", "logs", id)
	rows := regexp.MustCompile(`(?m)^m-000000\s+(\d)\s+(node\d)\s+failed\s`).FindAllStringSubmatch(list, -1)
	if len(rows) != 2 || rows[0][1] != "1" || rows[1][1] != "2" {
		t.Fatalf("want two failed attempts of m-000000 listed:\n%s", list)
	}
	for _, row := range rows {
		ran := row[2]
		other := "node1"
		if ran == "node1" {
			other = "node2"
		}
		t.Logf("attempt %s ran on %s; reading its log through %s", row[1], ran, other)
		log := e.mustCLI(st[other][1], "job", "logs", id, "--task", task, "--attempt", row[1])
		for _, want := range []string{"stderr line 1 of the failing mapper\n", "stderr line 50 of the failing mapper\n", "attempt failed: ", "exited with status 3", "map task m-000000 of job " + id} {
			if !strings.Contains(log, want) {
				t.Fatalf("log of attempt %s read through %s lacks %q:\n%s", row[1], other, want, log)
			}
		}
	}
	// Without --attempt: the last one.
	if last := e.mustCLI(st["node3"][1], "job", "logs", id, "--task", task); !strings.Contains(last, "stderr line 50") {
		t.Fatalf("last attempt's log:\n%s", last)
	}
	for _, bad := range [][]string{
		{"job", "logs", id, "--task", "m-000009"},
		{"job", "logs", id, "--task", task, "--attempt", "3"},
		{"job", "logs", "job-nosuch"},
		{"job", "logs", id, "--attempt", "1"},
		{"job", "logs", id, "--task", "../x"},
	} {
		r := e.cli(url, bad...)
		if r.code == 0 || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("shoal %s: exit %d, want a one-line error: %q", strings.Join(bad, " "), r.code, r.stderr)
		}
	}

	// --follow: a mapper that logs, then waits for a file the test
	// creates, then logs again and succeeds.
	gate := filepath.Join(e.dir, "gate")
	wait := fmt.Sprintf(`echo "waiting for the gate" >&2; while [ ! -e %s ]; do sleep 0.05; done; echo "through the gate" >&2; cat`, gate)
	out := e.mustCLI(url, "streaming", "-input", "/in/small.txt", "-output", "/follow", "-mapper", wait, "-reducer", "NONE", "-detach")
	fid := regexp.MustCompile(`job-[a-z0-9-]+`).FindString(out)
	if fid == "" {
		t.Fatalf("no job ID from a detached submit: %q", out)
	}
	// The attempt's log exists once the mapper starts.
	clustertest.Eventually(t, 60*time.Second, func() error {
		if r := e.cli(url, "job", "logs", fid); !strings.Contains(r.stdout, " running ") {
			return fmt.Errorf("no running attempt of %s: %s %s", fid, r.stdout, r.stderr)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shoalBin, "job", "logs", fid, "--task", "m-000000", "--follow", "--addr", st["node2"][1])
	cmd.Env = append(cleanEnv(), "SHOAL_SECRET_FILE="+e.lc.secretFile())
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewReader(pipe)
	var got strings.Builder
	for !strings.Contains(got.String(), "waiting for the gate\n") {
		l, err := lines.ReadString('\n')
		got.WriteString(l)
		if err != nil {
			t.Fatalf("follow ended before the mapper passed the gate: %v\n%s", err, got.String())
		}
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(lines)
	got.Write(rest)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("follow: %v\n%s", err, got.String())
	}
	if !strings.Contains(got.String(), "through the gate\n") || !strings.Contains(got.String(), "attempt succeeded\n") {
		t.Fatalf("followed log:\n%s", got.String())
	}
}
