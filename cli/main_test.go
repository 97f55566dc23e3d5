package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"shoal.dev/shoal/job"
)

// lineLengths is a user job: each input line's length, summed per length.
func lineLengths() job.Spec {
	return job.Spec{
		Name:  "linelen",
		Usage: "count the lines of each length",
		Build: func(map[string]string) (*job.Job, error) {
			return &job.Job{
				NewMapper: func(job.TaskInfo) (job.Mapper, error) {
					return job.MapperFunc(func(_, line []byte, out job.Emitter) error {
						return out.Emit([]byte(strings.Repeat("x", len(line))), []byte("1"))
					}), nil
				},
				NewReducer: func(job.TaskInfo) (job.Reducer, error) {
					return job.ReducerFunc(func(key []byte, vs job.Values, out job.Emitter) error {
						n := 0
						for _, ok := vs.Next(); ok; _, ok = vs.Next() {
							n++
						}
						return out.Emit(key, []byte(strings.Repeat("+", n)))
					}), nil
				},
			}, nil
		},
	}
}

// TestMainUserJobLocal: Main's jobs run with --local like a built-in one,
// are listed in `job run --help`, and a job that clashes with a built-in is
// a usage mistake.
func TestMainUserJobLocal(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, []byte("ab\ncd\nefg\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	args := []string{"myprog", "job", "run", "linelen", "--local", "--input", in, "--output", out}
	if code := run(context.Background(), args, &stdout, &stderr, lineLengths()); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	got, err := os.ReadFile(filepath.Join(out, "part-r-00000"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "xx\t++\nxxx\t+\n"; string(got) != want {
		t.Fatalf("output %q, want %q", got, want)
	}
	if !strings.Contains(strings.Join(strings.Fields(stdout.String()), " "), "MAP_INPUT_RECORDS 3") {
		t.Errorf("counters missing: %s", stdout.String())
	}

	stdout.Reset()
	if code := run(context.Background(), []string{"myprog", "job", "run", "--help"}, &stdout, &stderr, lineLengths()); code != 0 || !strings.Contains(stdout.String(), "linelen") {
		t.Errorf("job run --help: exit %d, %q does not name linelen", code, stdout.String())
	}
	// Without the job, the same program does not know it.
	stderr.Reset()
	if code := run(context.Background(), append([]string{}, args[:len(args)-1]...), &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), `unknown job "linelen"`) {
		t.Errorf("without the job: exit %d, %q", code, stderr.String())
	}

	clash := lineLengths()
	clash.Name = "wordcount"
	stderr.Reset()
	code := run(context.Background(), []string{"myprog", "version"}, &stdout, &stderr, clash)
	if lines := strings.Split(strings.TrimSpace(stderr.String()), "\n"); code != 2 || len(lines) != 1 || !strings.Contains(lines[0], "wordcount") {
		t.Errorf("a job named wordcount: exit %d, stderr %q", code, stderr.String())
	}
}
