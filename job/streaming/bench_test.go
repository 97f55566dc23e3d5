package streaming

import (
	"testing"

	"shoal.dev/shoal/job"
)

// BenchmarkMapperCat measures the pumping alone: records through cat and
// back, 100 bytes a line.
func BenchmarkMapperCat(b *testing.B) {
	spec, err := NewSpec(Config{TempDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	j, err := spec.Build(map[string]string{"mapper": "cat", "input": "text", "partitioner": ""})
	if err != nil {
		b.Fatal(err)
	}
	line := make([]byte, 99)
	for i := range line {
		line[i] = 'a' + byte(i%26)
	}
	const lines = 100000
	b.SetBytes(lines * 100)
	b.ReportAllocs()
	for b.Loop() {
		m, err := j.NewMapper(job.TaskInfo{})
		if err != nil {
			b.Fatal(err)
		}
		var out counter
		for range lines {
			if err := m.Map(nil, line, &out); err != nil {
				b.Fatal(err)
			}
		}
		if err := m.(job.Closer).Close(&out); err != nil {
			b.Fatal(err)
		}
		if out.n != lines {
			b.Fatalf("%d lines out", out.n)
		}
	}
}
