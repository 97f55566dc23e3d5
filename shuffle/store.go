package shuffle

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
)

// Store is a node's map outputs, laid out as
//
//	ROOT/<job>/<task>.data    records, partition after partition
//	ROOT/<job>/<task>.index   where each partition's segment lies
//
// next to whatever else the scheduler keeps in a job's directory (such as
// reducers' spool files). Job and task names must be [A-Za-z0-9._-]+ (see
// ErrInvalidName). A Store holds no state beyond its root and is safe for
// concurrent use.
type Store struct {
	root string
}

// NewStore returns the store under root, which need not exist yet.
func NewStore(root string) *Store { return &Store{root: root} }

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// Dir is the directory of a job's map outputs, MapConfig.Dir for its map
// tasks. It is "" for an invalid job name, which NewMapWriter refuses.
func (s *Store) Dir(job string) string {
	if !validName(job) {
		return ""
	}
	return filepath.Join(s.root, job)
}

func (s *Store) paths(job, task string) (data, index string, err error) {
	if err := checkName("job", job); err != nil {
		return "", "", err
	}
	if err := checkName("task", task); err != nil {
		return "", "", err
	}
	base := filepath.Join(s.root, job, task)
	return base + ".data", base + ".index", nil
}

// Segments returns a map output's index after checking it against its data
// file: ErrNotFound if either is missing, ErrCorrupt if they disagree.
func (s *Store) Segments(job, task string) ([]Segment, error) {
	f, segs, err := s.open(job, task)
	if err != nil {
		return nil, err
	}
	f.Close()
	return segs, nil
}

func (s *Store) open(job, task string) (*os.File, []Segment, error) {
	data, index, err := s.paths(job, task)
	if err != nil {
		return nil, nil, err
	}
	segs, err := ReadIndex(index)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s/%s: %w", job, task, ErrNotFound)
	}
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(data)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s/%s: data file missing: %w", job, task, ErrNotFound)
	}
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if want := dataLength(segs); fi.Size() != want {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %d bytes, its index says %d: %w", data, fi.Size(), want, ErrCorrupt)
	}
	return f, segs, nil
}

// openSegment opens one partition's segment: the data file and where the
// segment lies in it.
func (s *Store) openSegment(job, task string, partition int) (*os.File, Segment, error) {
	f, segs, err := s.open(job, task)
	if err != nil {
		return nil, Segment{}, err
	}
	if partition < 0 || partition >= len(segs) {
		f.Close()
		return nil, Segment{}, fmt.Errorf("%s/%s has no partition %d (it has %d)", job, task, partition, len(segs))
	}
	return f, segs[partition], nil
}

// Open opens one partition's segment of a map output for reading, and
// returns its length. The reader checks the segment's checksum at its end
// (an error wrapping ErrCorrupt on a mismatch); the caller must Close it.
// A missing output is ErrNotFound; bad names, ErrInvalidName.
func (s *Store) Open(job, task string, partition int) (io.ReadCloser, int64, error) {
	f, seg, err := s.openSegment(job, task, partition)
	if err != nil {
		return nil, 0, err
	}
	return &segReader{
		r:     io.NewSectionReader(f, seg.Offset, seg.Length),
		c:     f,
		name:  fmt.Sprintf("%s/%s partition %d", job, task, partition),
		left:  seg.Length,
		want:  seg.CRC,
		total: seg.Length,
	}, seg.Length, nil
}

// Remove deletes one map output; a missing one is not an error.
func (s *Store) Remove(job, task string) error {
	data, index, err := s.paths(job, task)
	if err != nil {
		return err
	}
	for _, p := range []string{index, data} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// RemoveJob deletes a job's directory: every map output of the job and
// whatever else is in it. A missing one is not an error.
func (s *Store) RemoveJob(job string) error {
	if err := checkName("job", job); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(s.root, job))
}

// Jobs lists the jobs that have a directory, sorted; none if the root is
// missing.
func (s *Store) Jobs() ([]string, error) {
	des, err := os.ReadDir(s.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var jobs []string
	for _, de := range des {
		if de.IsDir() && validName(de.Name()) {
			jobs = append(jobs, de.Name())
		}
	}
	sort.Strings(jobs)
	return jobs, nil
}

// segReader reads a segment and checks its CRC at the end.
type segReader struct {
	r     io.Reader
	c     io.Closer
	name  string
	left  int64
	total int64
	crc   uint32
	want  uint32
	err   error
}

func (s *segReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.crc = crc32.Update(s.crc, castagnoli, p[:n])
	s.left -= int64(n)
	switch {
	case s.left == 0:
		if s.crc != s.want {
			s.err = fmt.Errorf("%s: checksum %08x, want %08x: %w", s.name, s.crc, s.want, ErrCorrupt)
			return n, s.err
		}
		return n, nil
	case err == io.EOF:
		s.err = fmt.Errorf("%s: ends after %d of %d bytes: %w", s.name, s.total-s.left, s.total, io.ErrUnexpectedEOF)
	case err != nil:
		s.err = fmt.Errorf("%s: %w", s.name, err)
	}
	return n, s.err
}

func (s *segReader) Close() error { return s.c.Close() }
