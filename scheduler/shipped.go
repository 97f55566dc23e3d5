package scheduler

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"shoal.dev/shoal/blockstore"
	"shoal.dev/shoal/client"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/worker"
)

// Shipped jobs: a job compiled into its submitter's program, not into the
// agents. The client stores the program at BinaryPath(sum) and submits
// with SubmitRequest.Binary = sum. The submitting node fetches it,
// checks it (worker.CheckBinary), and asks a worker of it to describe the
// job (worker.Pool.Describe) and, for a job with a Prepare step, a worker
// to run it, sampling the input through the agent (worker.Pool.Prepare);
// the description goes into the job's spec
// block, so the other nodes schedule the job without running anything,
// and each fetches the program when its first task of the job starts.

// BinaryDir is the directory of the cluster file system where shipped
// programs are stored, each under its SHA-256 in hex.
const BinaryDir = client.BinaryDir

// BinaryPath is where the program whose SHA-256 is sum (hex) is stored.
func BinaryPath(sum string) string { return client.BinaryPath(sum) }

// validSum reports whether s is a SHA-256 in lower-case hex.
func validSum(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// describeShipped checks a shipped job's submission: its program is
// stored, verified and runnable here, and holds the job, which accepts
// the parameters.
func (s *Scheduler) describeShipped(ctx context.Context, req SubmitRequest) (*worker.Info, error) {
	if s.cfg.Workers == nil {
		return nil, badRequest("this node does not run shipped programs")
	}
	if !validSum(req.Binary) {
		return nil, badRequest("binary %q: want the program's SHA-256 in 64 lower-case hex digits", req.Binary)
	}
	bin, err := s.binary(ctx, req.Binary)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	info, err := s.cfg.Workers.Describe(ctx, bin, req.Name, req.Params)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return &info, nil
}

// prepareShipped runs a shipped job's Prepare in a worker of its program,
// sampling the input with s, and returns the info of the job rebuilt with
// the parameters it returned (as ResolvePrepared does for a built-in job).
func (s *Scheduler) prepareShipped(ctx context.Context, req SubmitRequest, sampler job.Sampler) (*worker.Info, error) {
	bin, err := s.binary(ctx, req.Binary)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	info, err := s.cfg.Workers.Prepare(ctx, bin, req.Name, req.Params, req.Reducers, sampler)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return &info, nil
}

// shippedJob is the stand-in job.Job of a shipped job on this node.
func (s *Scheduler) shippedJob(rec *JobRecord, info worker.Info) (*job.Job, error) {
	if s.cfg.Workers == nil {
		return nil, errors.New("this node does not run shipped programs")
	}
	sum := rec.Binary
	return s.cfg.Workers.Job(worker.JobConfig{
		Info:       info,
		Binary:     func(ctx context.Context) (string, error) { return s.taskBinary(ctx, sum) },
		Reducers:   rec.Reducers,
		ShuffleDir: s.cfg.Shuffle.Dir(rec.ID),
		SortBuffer: s.cfg.SortBuffer,
	}), nil
}

// programWait bounds how long a task whose program the cluster does not
// store waits for a node that caches it to store it again (repairBinaries
// does within a scheduler pass or two of seeing it deleted).
const programWait = 30 * time.Second

// taskBinary is binary for a task: a program the cluster does not store
// is waited for, up to programWait, until its file record appears again,
// and fetched then, so that the task's attempts are not spent while a
// node stores it again. After the wait the task fails, saying so.
func (s *Scheduler) taskBinary(ctx context.Context, sum string) (string, error) {
	path, err := s.binary(ctx, sum)
	if !errors.Is(err, ErrNoProgram) {
		return path, err
	}
	s.Stats.ProgramWaits.Add(1)
	key := blockstore.FileKeyPrefix + BinaryPath(sum)
	changes, cancel := s.cfg.Records.Watch(key)
	defer cancel()
	timer := time.NewTimer(programWait)
	defer timer.Stop()
	for {
		if _, ok := s.cfg.Records.Get(key); ok {
			return s.binary(ctx, sum)
		}
		select {
		case _, ok := <-changes:
			if !ok {
				return "", err // the node is stopping
			}
		case <-ctx.Done():
			return "", err
		case <-timer.C:
			return "", fmt.Errorf("%w, and no node stored it again within %v", err, programWait)
		}
	}
}

// binary returns the path of the program sum in this node's cache,
// fetching it from the cluster file system the first time and verifying
// it against sum and this node's OS and architecture, and marks it used
// now (its modification time, to the minute). Concurrent calls for one
// program fetch it once; none runs while the cache is pruned.
func (s *Scheduler) binary(ctx context.Context, sum string) (string, error) {
	if !validSum(sum) {
		return "", fmt.Errorf("binary %q is not a SHA-256", sum)
	}
	path := filepath.Join(s.cfg.BinDir, sum)
	s.binMu.Lock()
	defer s.binMu.Unlock()
	if fi, err := os.Stat(path); err == nil {
		// Its modification time is its last use (pruneBinCache).
		if now := time.Now(); now.Sub(fi.ModTime()) > time.Minute {
			os.Chtimes(path, now, now)
		}
		return path, nil
	}
	if err := os.MkdirAll(s.cfg.BinDir, 0o700); err != nil {
		return "", err
	}
	tmp := path + ".tmp"
	if err := s.fetchFile(ctx, BinaryPath(sum), tmp); err != nil {
		os.Remove(tmp)
		if errors.Is(err, blockstore.ErrNoFile) {
			return "", fmt.Errorf("the shipped program %s is %w (%s)", sum[:12], ErrNoProgram, BinaryPath(sum))
		}
		return "", fmt.Errorf("fetch the shipped program %s: %w", sum[:12], err)
	}
	got, err := fileSum(tmp)
	if err == nil && got != sum {
		err = fmt.Errorf("the shipped program stored as %s has SHA-256 %s", sum[:12], got[:12])
	}
	if err == nil {
		err = worker.CheckBinary(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, nil
}

// keepProgram stores again, from this node's cache, the program sum of a
// job (whose: "a newly submitted", "a running") if the cluster
// no longer stores it: the clean-up of BinaryDir (another node, whose pass
// read the job records before this job's reached it, or the larger side
// of a partition that did not know the job) may have deleted it, and the
// job's other nodes could not fetch it. The job record keeps the program
// once every node has it, and the cached copy was verified when it was
// cached (and stays cached: binPins, then the record).
func (s *Scheduler) keepProgram(ctx context.Context, sum, whose string) {
	p := BinaryPath(sum)
	if s.cfg.SyncRecords != nil {
		s.cfg.SyncRecords(ctx, blockstore.FileKeyPrefix+p)
	}
	if _, err := s.cfg.FS.Stat(p); !errors.Is(err, blockstore.ErrNoFile) {
		return
	}
	f, err := os.Open(filepath.Join(s.cfg.BinDir, sum))
	if err != nil {
		s.log.Warn("the shipped program of "+whose+" job was deleted, and is not cached here to store again", "program", sum[:12], "err", err)
		return
	}
	defer f.Close()
	if _, err := s.cfg.FS.Create(ctx, p, f, blockstore.CreateOptions{}); err != nil && !errors.Is(err, blockstore.ErrExists) {
		s.log.Warn("store again the shipped program of "+whose+" job", "program", sum[:12], "err", err)
		return
	}
	s.log.Info("stored again the shipped program of "+whose+" job: the clean-up of unused programs had deleted it", "program", sum[:12])
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
