package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"shoal.dev/shoal/client"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/blockstore"
)

// dirWorkers is how many files a directory put or get moves at once.
const dirWorkers = 4

// localFile is a file of a local directory tree to put.
type localFile struct {
	local string // its path on this machine
	dst   string // its path in the cluster
	size  int64
}

// walkLocal lists the regular files below a local directory (symbolic
// links to files are followed), sorted, each with its cluster path under
// dst. Anything else (a device, a socket, a link to a directory or to
// nothing) is an error naming it: nothing is put.
func walkLocal(dir, dst string) ([]localFile, error) {
	var out []localFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		fi, err := os.Stat(p) // follows a link
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file (%s); nothing was put", p, fi.Mode().Type())
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, localFile{local: p, dst: path.Join(dst, filepath.ToSlash(rel)), size: fi.Size()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].dst < out[j].dst })
	return out, err
}

// putDir puts every file below a local directory under dst, dirWorkers at
// a time, with one progress bar. Every destination path is checked first:
// without --force, one that exists refuses the whole put before anything
// is stored. If a file fails, the others stop, and the error says how many
// were stored (they stay: each is complete).
func putDir(c *ucli.Context, cl *client.Client, dir, dst string, opts client.PutOptions) error {
	files, err := walkLocal(dir, dst)
	if err != nil {
		return err
	}
	var total int64
	for _, f := range files {
		if _, err := blockstore.CleanPath(f.dst, false); err != nil {
			return fmt.Errorf("%s: %w", f.local, err)
		}
		total += f.size
	}
	if !opts.Force {
		if es, err := walkRemote(c.Context, cl, dst); err == nil {
			have := map[string]bool{}
			for _, e := range es {
				have[e.Path] = true
			}
			for _, f := range files {
				if have[f.dst] {
					return fmt.Errorf("%s exists (use --force to replace it); nothing was put", f.dst)
				}
			}
		} else if st, serr := cl.Stat(c.Context, dst); serr == nil {
			return fmt.Errorf("%s is a file; nothing was put", st.Path)
		}
	}
	agents := agentList(c, cl)
	p := newProgress(c.App.ErrWriter, fmt.Sprintf("put %s (%d files)", dst, len(files)), total)
	defer p.finish()
	var warned sync.Once
	stored, err := forEach(c.Context, len(files), func(ctx context.Context, i int) error {
		f := files[i]
		lf, err := os.Open(f.local)
		if err != nil {
			return err
		}
		defer lf.Close()
		info, err := client.PutLocal(ctx, agents, f.dst, lf, f.size, opts,
			func(n int64) { p.add(int(n)) },
			putFailover(c.App.ErrWriter, f.dst))
		if err != nil {
			return fmt.Errorf("put %s: %w", f.local, err)
		}
		if info.Warning != "" {
			warned.Do(func() { fmt.Fprintf(c.App.ErrWriter, "shoal: warning: %s\n", info.Warning) })
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w (%d of %d files were stored)", err, stored, len(files))
	}
	return nil
}

// forEach runs fn for 0..n-1, dirWorkers at a time, and stops starting
// new ones at the first error, which it returns with how many succeeded.
func forEach(ctx context.Context, n int, fn func(ctx context.Context, i int) error) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		next, ok int
		first    error
		wg       sync.WaitGroup
	)
	for range min(dirWorkers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if first != nil || next == n {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				err := fn(ctx, i)
				mu.Lock()
				if err == nil {
					ok++
				} else if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok, first
}

// walkRemote lists every file below a cluster directory, sorted by path.
// It fails when dir is not a directory.
func walkRemote(ctx context.Context, cl *client.Client, dir string) ([]client.FileInfo, error) {
	es, err := cl.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	clean, _ := blockstore.CleanPath(dir, true)
	var out []client.FileInfo
	for _, e := range es {
		switch {
		case e.Dir:
			below, err := walkRemote(ctx, cl, e.Path)
			if err != nil {
				return nil, err
			}
			out = append(out, below...)
		case e.File != nil && e.Path == clean:
			return nil, fmt.Errorf("%s is a file, not a directory", dir)
		case e.File != nil:
			out = append(out, *e.File)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// isRemoteDir reports whether p names a directory in the cluster.
func isRemoteDir(ctx context.Context, cl *client.Client, p string) bool {
	if _, err := cl.Stat(ctx, p); err == nil {
		return false
	}
	_, err := walkRemote(ctx, cl, p)
	return err == nil
}

// getDir copies every file below a cluster directory into a new local
// directory, dirWorkers at a time, with one progress bar. It fills a
// temporary directory beside local and renames it at the end, so a failed
// get leaves nothing.
func getDir(c *ucli.Context, cl *client.Client, src, local string) error {
	if _, err := os.Lstat(local); err == nil {
		return fmt.Errorf("%s exists; give a new local directory", local)
	}
	files, err := walkRemote(c.Context, cl, src)
	if err != nil {
		return err
	}
	root, _ := blockstore.CleanPath(src, true)
	tmp, err := os.MkdirTemp(filepath.Dir(local), "."+filepath.Base(local)+".shoal-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var total int64
	for _, f := range files {
		total += f.Size
	}
	agents := agentList(c, cl)
	p := newProgress(c.App.ErrWriter, fmt.Sprintf("get %s (%d files)", src, len(files)), total)
	_, err = forEach(c.Context, len(files), func(ctx context.Context, i int) error {
		f := files[i]
		rel := strings.TrimPrefix(strings.TrimPrefix(f.Path, root), "/")
		dst := filepath.Join(tmp, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		r, err := client.OpenFile(ctx, agents, f.Path, func(from, to *client.Client, off int64, _ error) {
			fmt.Fprintf(c.App.ErrWriter, "\nshoal: %s stopped answering at byte %d of %s; going on through %s\n", from, off, f.Path, to)
		})
		if err != nil {
			out.Close()
			return err
		}
		n, err := io.Copy(out, p.reader(r))
		r.Close()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil && n != r.Size() {
			err = fmt.Errorf("transfer cut at %d of %d bytes", n, r.Size())
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", f.Path, err)
		}
		return nil
	})
	p.finish()
	if err != nil {
		return err
	}
	return os.Rename(tmp, local)
}

func fsDu(c *ucli.Context) error {
	if c.NArg() > 1 {
		return usageError{errors.New("usage: shoal fs du [-s] [--human] [PATH]")}
	}
	p := "/"
	if c.NArg() == 1 {
		p = c.Args().First()
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	size := func(n int64) string { return sizeText(c, n) }
	type row struct {
		path        string
		bytes, disk int64
		files       int
	}
	var rows []row
	add := func(r *row, f client.FileInfo) {
		r.bytes += f.Size
		r.disk += f.Size * int64(max(f.Replication, 1))
		r.files++
	}
	if st, err := cl.Stat(c.Context, p); err == nil {
		r := row{path: st.Path}
		add(&r, st)
		rows = append(rows, r)
	} else {
		es, err := cl.List(c.Context, p)
		if err != nil {
			return err
		}
		total := row{path: p}
		for _, e := range es {
			r := row{path: e.Path}
			if e.Dir {
				r.path += "/"
				below, err := walkRemote(c.Context, cl, e.Path)
				if err != nil {
					return err
				}
				for _, f := range below {
					add(&r, f)
				}
			} else if e.File != nil {
				add(&r, *e.File)
			}
			rows = append(rows, r)
			total.bytes, total.disk, total.files = total.bytes+r.bytes, total.disk+r.disk, total.files+r.files
		}
		if c.Bool("s") {
			rows = []row{total}
		}
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SIZE\tWITH REPLICAS\tFILES\tPATH")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", size(r.bytes), size(r.disk), r.files, r.path)
	}
	return tw.Flush()
}

func fsDf(c *ucli.Context) error {
	if c.NArg() > 0 {
		return usageError{errors.New("usage: shoal fs df [--human]")}
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	size := func(n int64) string { return sizeText(c, n) }
	agents := agentList(c, cl)
	type res struct {
		d   client.DiskInfo
		err error
	}
	out := make([]res, len(agents))
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].d, out[i].err = a.Df(c.Context)
			if out[i].d.Name == "" {
				out[i].d.Name = a.String()
			}
		}()
	}
	wg.Wait()
	sort.Slice(out, func(i, j int) bool { return out[i].d.Name < out[j].d.Name })
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tCAPACITY\tUSED\tFREE\tUSE%\tBLOCKS")
	var sum client.DiskInfo
	for _, r := range out {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t(%s)\n", r.d.Name, oneLine(r.err))
			continue
		}
		d := r.d
		pct := "-"
		if d.Capacity > 0 {
			pct = fmt.Sprintf("%.1f%%", 100*float64(d.Used)/float64(d.Capacity))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", d.Name, size(d.Capacity), size(d.Used), size(d.Free), pct, d.Blocks)
		sum.Capacity, sum.Used, sum.Free, sum.Blocks = sum.Capacity+d.Capacity, sum.Used+d.Used, sum.Free+d.Free, sum.Blocks+d.Blocks
	}
	fmt.Fprintf(tw, "total\t%s\t%s\t%s\t\t%d\n", size(sum.Capacity), size(sum.Used), size(sum.Free), sum.Blocks)
	return tw.Flush()
}

// sizeText is n bytes as fs du and fs df print it: exact, or with --human
// in units.
func sizeText(c *ucli.Context, n int64) string {
	if c.Bool("human") {
		return humanBytes(n)
	}
	return fmt.Sprint(n)
}
