package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress draws a one-line progress bar on a terminal; elsewhere it is
// silent. It counts what passes through Reader or Writer wrappers.
type progress struct {
	out   io.Writer // nil when quiet
	label string
	total int64 // -1 when unknown
	start time.Time

	mu   sync.Mutex
	done int64
	last time.Time
}

func newProgress(stderr io.Writer, label string, total int64) *progress {
	p := &progress{label: label, total: total, start: time.Now()}
	if isTerminal(stderr) {
		p.out = stderr
	}
	return p
}

func (p *progress) add(n int) {
	if p.out == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += int64(n)
	if now := time.Now(); now.Sub(p.last) > 200*time.Millisecond {
		p.last = now
		p.draw()
	}
}

func (p *progress) draw() {
	secs := time.Since(p.start).Seconds()
	rate := ""
	if secs > 0 {
		rate = humanBytes(int64(float64(p.done)/secs)) + "/s"
	}
	if p.total > 0 {
		pct := float64(p.done) * 100 / float64(p.total)
		const width = 30
		fill := int(pct / 100 * width)
		fill = min(max(fill, 0), width)
		fmt.Fprintf(p.out, "\r%s [%s%s] %5.1f%% %s / %s %s ", p.label, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct, humanBytes(p.done), humanBytes(p.total), rate)
	} else {
		fmt.Fprintf(p.out, "\r%s %s %s ", p.label, humanBytes(p.done), rate)
	}
}

// finish draws the final state and ends the line.
func (p *progress) finish() {
	if p.out == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.draw()
	fmt.Fprintln(p.out)
}

func (p *progress) reader(r io.Reader) io.Reader { return &progressReader{r: r, p: p} }

type progressReader struct {
	r io.Reader
	p *progress
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.add(n)
	return n, err
}

// humanBytes formats a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// parseSize reads a byte count: a whole number with an optional unit K, M,
// G or T (also KB/KiB …, all powers of 1024, as Hadoop's block sizes are).
func parseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a number with an optional unit, like 128MB or 64K", s)
	}
	return v * mult, nil
}
