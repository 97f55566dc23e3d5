package streaming_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
	"shoal.dev/shoal/job/streaming"
)

// The classic Hadoop Streaming word count, in Python.
const (
	wordCountMapper = `import sys

out = sys.stdout.buffer
for line in sys.stdin.buffer:
    for word in line.split():
        out.write(word + b"\t1\n")
`
	wordCountReducer = `#!/usr/bin/env python3
import sys

out = sys.stdout.buffer
current, count = None, 0
for line in sys.stdin.buffer:
    word, _, n = line.rstrip(b"\n").partition(b"\t")
    if word != current:
        if current is not None:
            out.write(current + b"\t" + str(count).encode() + b"\n")
        current, count = word, 0
    count += int(n)
if current is not None:
    out.write(current + b"\t" + str(count).encode() + b"\n")
`
)

// TestWordCountMatchesBuiltin runs the Python word count, its scripts
// shipped with the job, and checks its output is byte for byte the
// built-in wordcount's, with or without the reducer as combiner.
func TestWordCountMatchesBuiltin(t *testing.T) {
	var corpus bytes.Buffer
	if err := builtin.GenerateText(&corpus, 3<<20, 7); err != nil {
		t.Fatal(err)
	}
	in := splitLines(corpus.Bytes(), 3)

	dir := t.TempDir()
	mapper := filepath.Join(dir, "mapper.py")
	reducer := filepath.Join(dir, "reducer.py")
	if err := os.WriteFile(mapper, []byte(wordCountMapper), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(reducer, []byte(wordCountReducer), 0o644); err != nil {
		t.Fatal(err)
	}

	r := job.NewRegistry()
	builtin.Register(r)
	streaming.Register(r)
	for _, tc := range []struct {
		reducers int
		combiner string
	}{{1, ""}, {3, ""}, {3, "./reducer.py"}} {
		want, _ := run(t, r, "wordcount", nil, in, tc.reducers)
		got, c := run(t, r, streaming.Name, map[string]string{
			"mapper":   "python3 mapper.py",
			"reducer":  "./reducer.py",
			"combiner": tc.combiner,
			"files":    mapper + "\n" + reducer,
		}, in, tc.reducers)
		if len(got) != tc.reducers {
			t.Errorf("%+v: %d files", tc, len(got))
		}
		for name, data := range want {
			if !bytes.Equal(got[name], data) {
				t.Errorf("%+v: %s differs from wordcount's (%d bytes, want %d)", tc, name, len(got[name]), len(data))
			}
		}
		if tc.combiner != "" && c.Get(job.COMBINE_OUTPUT_RECORDS) >= c.Get(job.COMBINE_INPUT_RECORDS) {
			t.Errorf("%+v: counters %v", tc, c)
		}
	}
}

// run runs the job name of r sequentially and returns its output files.
func run(t *testing.T, r *job.Registry, name string, params map[string]string, in []job.Input, reducers int) (map[string][]byte, job.Counters) {
	t.Helper()
	j, err := r.Resolve(name, params)
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := r.Lookup(name)
	filled, err := spec.FillParams(params)
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string]*bytes.Buffer)
	c, err := job.RunSequential(context.Background(), j, "wc", filled, in, reducers, func(name string) (io.WriteCloser, error) {
		b := new(bytes.Buffer)
		files[name] = b
		return nopCloser{b}, nil
	})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	out := make(map[string][]byte, len(files))
	for name, b := range files {
		out[name] = b.Bytes()
	}
	return out, c
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// splitLines cuts data into n inputs at line boundaries.
func splitLines(data []byte, n int) []job.Input {
	var in []job.Input
	for i := range n {
		end := len(data)
		if i < n-1 {
			end = len(data) / (n - i)
			if j := bytes.IndexByte(data[end:], '\n'); j >= 0 {
				end += j + 1
			}
		}
		part := data[:end]
		data = data[end:]
		in = append(in, job.Input{Path: "/corpus/" + string(rune('a'+i)), Open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(part)), nil
		}})
	}
	return in
}
