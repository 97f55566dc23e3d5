package scheduler

import (
	"bytes"
	"fmt"
	"io"
	"testing"

	"shoal.dev/shoal/job"
)

// TestOutputWriterGathersRecords: an outputWriter writes every record, in
// order, whether the output stays under outputFlushBytes (then it holds a
// buffer the size of its records, not the flush size) or runs over it many
// times.
func TestOutputWriterGathersRecords(t *testing.T) {
	for _, n := range []int{0, 1, 3, 100_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			pr, pw := io.Pipe()
			w := &outputWriter{f: job.TextOutput, pw: pw, dst: pw, done: make(chan error, 1)}
			var got bytes.Buffer
			go func() {
				_, err := io.Copy(&got, pr)
				w.done <- err
			}()
			var want []byte
			for i := range n {
				k, v := []byte(fmt.Sprintf("key %d", i)), bytes.Repeat([]byte{'v'}, i%50)
				want = job.AppendOutput(want, job.TextOutput, k, v)
				if err := w.emit(k, v); err != nil {
					t.Fatal(err)
				}
				if n < 10 && cap(w.buf) > 256 {
					t.Fatalf("after %d small records the buffer holds %d bytes", i+1, cap(w.buf))
				}
			}
			if err := w.close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("wrote %d bytes, want %d (the records in order)", got.Len(), len(want))
			}
		})
	}
}
