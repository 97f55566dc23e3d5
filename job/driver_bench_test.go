package job

import (
	"context"
	"testing"
)

// BenchmarkDriverMap measures what the task driver adds per record (its
// CallSafely per Map, the counting emitter, the context check) against
// calling the same mapper in a plain loop, and against a recover per
// record (the scheduler's loop before the driver): b.N records each.
func BenchmarkDriverMap(b *testing.B) {
	rec := []byte("the quick brown fox jumps over the lazy dog")
	var sink int
	out := EmitterFunc(func(k, v []byte) error { sink += len(k) + len(v); return nil })
	m := MapperFunc(func(k, v []byte, out Emitter) error { return out.Emit(v[:3], v) })
	src := func(n int) RecordSource {
		return func(fn func(k, v []byte) error) error {
			for range n {
				if err := fn(nil, rec); err != nil {
					return err
				}
			}
			return nil
		}
	}
	b.Run("plain-loop", func(b *testing.B) {
		b.ReportAllocs()
		err := src(b.N)(func(k, v []byte) error { return m.Map(k, v, out) })
		if err != nil {
			b.Fatal(err)
		}
	})
	// What the scheduler did before the driver: a recover per record.
	b.Run("recover-per-record", func(b *testing.B) {
		b.ReportAllocs()
		err := src(b.N)(func(k, v []byte) error { return CallSafely(func() error { return m.Map(k, v, out) }) })
		if err != nil {
			b.Fatal(err)
		}
	})
	b.Run("driver", func(b *testing.B) {
		b.ReportAllocs()
		j := &Job{NewMapper: func(TaskInfo) (Mapper, error) { return m, nil }}
		if _, err := RunMapTask(context.Background(), Task{Job: j}, src(b.N), out); err != nil {
			b.Fatal(err)
		}
	})
	_ = sink
}
