package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"shoal.dev/shoal/client"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"shoal.dev/shoal/blockstore"
)

func fsCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "fs",
		Usage: "the cluster's replicated file system",
		Subcommands: []*ucli.Command{
			{
				Name:      "put",
				Usage:     "store a local file (or - for stdin) at PATH, or a local directory's files below PATH",
				ArgsUsage: "LOCAL|- PATH",
				Flags: append(clientFlags(),
					&ucli.StringFlag{Name: "block-size", Usage: "block size, e.g. 128MB, 1MB, 64K (at least 64K)", Value: "128MB"},
					&ucli.IntFlag{Name: "replication", Aliases: []string{"r"}, Usage: "copies of each block, capped at the cluster size", Value: blockstore.DefaultReplication},
					&ucli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "replace an existing file"},
				),
				Action: fsPut,
			},
			{
				Name:      "get",
				Usage:     "copy the file PATH to a local file (or - for stdout), or the directory PATH to a new local directory",
				ArgsUsage: "PATH LOCAL|-",
				Flags:     clientFlags(),
				Action:    fsGet,
			},
			{
				Name:      "cat",
				Usage:     "print files to stdout; quote globs: '/out/part-*'",
				ArgsUsage: "PATH|GLOB ...",
				Flags:     clientFlags(),
				Action:    fsCat,
			},
			{
				Name:      "getmerge",
				Usage:     "concatenate the files in DIR, in name order, into a local file",
				ArgsUsage: "DIR LOCAL",
				Flags:     clientFlags(),
				Action:    fsGetmerge,
			},
			{
				Name:      "ls",
				Usage:     "list a directory (default /) or a file",
				ArgsUsage: "[PATH]",
				Flags:     clientFlags(),
				Action:    fsLs,
			},
			{
				Name:      "rm",
				Usage:     "remove a file, or with -r a directory and everything below",
				ArgsUsage: "PATH",
				Flags:     append(clientFlags(), &ucli.BoolFlag{Name: "r", Aliases: []string{"R", "recursive"}, Usage: "remove directories recursively"}),
				Action:    fsRm,
			},
			fsMvCommand(),
			{
				Name:      "stat",
				Usage:     "show a file's blocks: ID, length, the nodes holding it and its ring owners",
				ArgsUsage: "PATH",
				Flags:     clientFlags(),
				Action:    fsStat,
			},
			fsConflictsCommand(),
			{
				Name:      "du",
				Usage:     "bytes below PATH (default /), each entry or with -s the total: size, size with replicas, files",
				ArgsUsage: "[PATH]",
				Flags: append(clientFlags(),
					&ucli.BoolFlag{Name: "s", Usage: "one line: the total"},
					&ucli.BoolFlag{Name: "human", Usage: "sizes in KiB, MiB, …"}),
				Action: fsDu,
			},
			{
				Name:   "df",
				Usage:  "each node's disk capacity, block bytes used, free space and blocks held",
				Flags:  append(clientFlags(), &ucli.BoolFlag{Name: "human", Usage: "sizes in KiB, MiB, …"}),
				Action: fsDf,
			},
		},
	}
}

func fsPut(c *ucli.Context) error {
	if err := exactArgs(c, 2, "LOCAL|- PATH"); err != nil {
		return err
	}
	local, dst := c.Args().Get(0), c.Args().Get(1)
	bs, err := parseSize(c.String("block-size"))
	if err != nil {
		return usageError{fmt.Errorf("--block-size: %w", err)}
	}
	if bs < blockstore.MinBlockSize {
		return usageError{fmt.Errorf("--block-size %s is below the minimum 64K", c.String("block-size"))}
	}
	if bs > blockstore.MaxBlockSize {
		return usageError{fmt.Errorf("--block-size %s is above the maximum 2GB", c.String("block-size"))}
	}
	if c.Int("replication") < 1 {
		return usageError{fmt.Errorf("--replication must be at least 1, got %d", c.Int("replication"))}
	}
	if _, err := blockstore.CleanPath(dst, false); err != nil {
		return err
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	if !c.Bool("force") {
		if _, err := cl.Stat(c.Context, dst); err == nil {
			return fmt.Errorf("%s exists (use --force to replace it)", dst)
		}
	}
	opts := client.PutOptions{BlockSize: bs, Replication: c.Int("replication"), Force: c.Bool("force")}
	if fi, err := os.Stat(local); local != "-" && err == nil && fi.IsDir() {
		return putDir(c, cl, local, dst, opts)
	}
	var info client.PutInfo
	if local == "-" {
		info, err = putStdin(c, cl, dst, opts)
	} else {
		info, err = putLocal(c, cl, local, dst, opts)
	}
	if err != nil {
		return err
	}
	if info.Warning != "" {
		fmt.Fprintf(c.App.ErrWriter, "shoal: warning: %s\n", info.Warning)
	}
	return nil
}

// putLocal puts a local file with the resumable put: the CLI cuts it into
// blocks and, if its agent dies, goes on through another member from the
// first block not acknowledged.
func putLocal(c *ucli.Context, cl *client.Client, local, dst string, opts client.PutOptions) (client.PutInfo, error) {
	f, err := os.Open(local)
	if err != nil {
		return client.PutInfo{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return client.PutInfo{}, err
	}
	if fi.IsDir() {
		return client.PutInfo{}, fmt.Errorf("%s is a directory", local)
	}
	p := newProgress(c.App.ErrWriter, "put "+dst, fi.Size())
	defer p.finish()
	return client.PutLocal(c.Context, agentList(c, cl), dst, f, fi.Size(), opts,
		func(n int64) { p.add(int(n)) },
		putFailover(c.App.ErrWriter, dst))
}

// putStdin streams stdin to one agent. Stdin cannot be read twice, so if
// that agent dies the put fails, and says so; nothing becomes visible.
func putStdin(c *ucli.Context, cl *client.Client, dst string, opts client.PutOptions) (client.PutInfo, error) {
	me := agentList(c, cl)[0] // its name, for the message should it die
	p := newProgress(c.App.ErrWriter, "put "+dst, -1)
	cr := &countReader{r: p.reader(os.Stdin)}
	info, err := cl.Put(c.Context, dst, cr, -1, opts)
	p.finish()
	if errors.Is(err, client.ErrUnreachable) && cr.n > 0 {
		return info, fmt.Errorf("put %s: %s stopped answering after %d bytes of stdin; stdin cannot be read again, so nothing was stored: save the data to a local file and put that (a local file goes on through another member)", dst, me, cr.n)
	}
	return info, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// agentList returns cl, named when it can be, then clients for every other
// alive member's API, for failover. Only cl is asked, once, up front: the
// list must be known before cl dies.
func agentList(c *ucli.Context, cl *client.Client) []*client.Client {
	ms, err := cl.Members(c.Context)
	if err != nil {
		return []*client.Client{cl}
	}
	out := []*client.Client{cl}
	for _, m := range ms {
		if m.HTTP != "" && strings.HasSuffix(cl.Addr(), m.HTTP) {
			out[0] = cl.Named(m.Name)
			continue
		}
		if m.State != "alive" || m.HTTP == "" {
			continue
		}
		if o, err := cl.At(m.HTTP); err == nil {
			out = append(out, o.Named(m.Name))
		}
	}
	return out
}

func fsGet(c *ucli.Context) error {
	if err := exactArgs(c, 2, "PATH LOCAL|-"); err != nil {
		return err
	}
	src, local := c.Args().Get(0), c.Args().Get(1)
	cl, err := dial(c)
	if err != nil {
		return err
	}
	if local != "-" && isRemoteDir(c.Context, cl, src) {
		return getDir(c, cl, src, local)
	}
	agents := agentList(c, cl)
	return writeLocal(c, local, func(w io.Writer) error {
		return copyFile(c, agents, src, w)
	})
}

// copyFile streams one cluster file to w, with a progress bar when w is
// not the terminal itself. If the agent dies mid-file, the copy goes on
// from the byte it had reached through another member.
func copyFile(c *ucli.Context, agents []*client.Client, src string, w io.Writer) error {
	r, err := client.OpenFile(c.Context, agents, src, func(from, to *client.Client, off int64, _ error) {
		fmt.Fprintf(c.App.ErrWriter, "\nshoal: %s stopped answering at byte %d of %s; going on through %s\n", from, off, src, to)
	})
	if err != nil {
		return err
	}
	defer r.Close()
	size := r.Size()
	var p *progress
	if w == c.App.Writer && isTerminal(w) {
		p = newProgress(io.Discard, "", size)
	} else {
		p = newProgress(c.App.ErrWriter, "get "+src, size)
	}
	// A MiB at a time: io.Copy into a file reads 32 KiB per call, 32,768
	// socket reads and file writes per GiB.
	n, err := io.CopyBuffer(writeOnly{w}, p.reader(r), make([]byte, 1<<20))
	p.finish()
	if err != nil {
		return fmt.Errorf("get %s: %w", src, err)
	}
	if n != size {
		return fmt.Errorf("get %s: transfer cut at %d of %d bytes", src, n, size)
	}
	return nil
}

// writeOnly hides a destination's ReadFrom, which would copy through a
// buffer of its own choosing.
type writeOnly struct{ w io.Writer }

func (w writeOnly) Write(p []byte) (int, error) { return w.w.Write(p) }

// writeLocal runs fill on stdout for "-", else on a temp file next to local
// that becomes local only if fill succeeds: a failed get leaves nothing.
func writeLocal(c *ucli.Context, local string, fill func(io.Writer) error) error {
	if local == "-" {
		return fill(c.App.Writer)
	}
	if fi, err := os.Stat(local); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", local)
	}
	tmp, err := os.CreateTemp(filepath.Dir(local), "."+filepath.Base(local)+".shoal-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), local)
}

func fsCat(c *ucli.Context) error {
	if c.NArg() == 0 {
		return usageError{errors.New("usage: shoal fs cat PATH|GLOB ...")}
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	agents := agentList(c, cl)
	for _, arg := range c.Args().Slice() {
		files, err := cl.Glob(c.Context, arg)
		if err != nil {
			return err
		}
		for _, f := range files {
			if err := copyFile(c, agents, f.Path, c.App.Writer); err != nil {
				return err
			}
		}
	}
	return nil
}

func fsGetmerge(c *ucli.Context) error {
	if err := exactArgs(c, 2, "DIR LOCAL"); err != nil {
		return err
	}
	dir, local := c.Args().Get(0), c.Args().Get(1)
	cl, err := dial(c)
	if err != nil {
		return err
	}
	entries, err := cl.List(c.Context, dir)
	if err != nil {
		return err
	}
	var files []string
	for _, e := range entries {
		if !e.Dir {
			files = append(files, e.Path)
		}
	}
	slices.Sort(files)
	agents := agentList(c, cl)
	return writeLocal(c, local, func(w io.Writer) error {
		for _, f := range files {
			if err := copyFile(c, agents, f, w); err != nil {
				return err
			}
		}
		return nil
	})
}

func fsLs(c *ucli.Context) error {
	if c.NArg() > 1 {
		return usageError{errors.New("usage: shoal fs ls [PATH]")}
	}
	p := c.Args().First()
	if p == "" {
		p = "/"
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	entries, err := cl.List(c.Context, p)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tREPL\tSIZE\tBLOCKS\tMODIFIED\tPATH")
	for _, e := range entries {
		if e.Dir && e.File == nil {
			fmt.Fprintf(tw, "dir\t-\t%d\t-\t-\t%s/\n", e.Size, e.Path)
			continue
		}
		f := e.File
		fmt.Fprintf(tw, "file\t%d\t%d\t%d\t%s\t%s\n", f.Replication, f.Size, f.Blocks, f.MTime().Local().Format(time.DateTime), f.Path)
	}
	return tw.Flush()
}

func fsRm(c *ucli.Context) error {
	if err := exactArgs(c, 1, "[-r] PATH"); err != nil {
		return err
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	removed, err := cl.Remove(c.Context, c.Args().First(), c.Bool("r"))
	if err != nil {
		return err
	}
	for _, p := range removed {
		fmt.Fprintf(c.App.Writer, "removed %s\n", p)
	}
	return nil
}

func fsStat(c *ucli.Context) error {
	if err := exactArgs(c, 1, "PATH"); err != nil {
		return err
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, 2*time.Minute)
	defer cancel()
	st, err := cl.StatBlocks(ctx, c.Args().First())
	if err != nil {
		return err
	}
	f := st.File
	w := c.App.Writer
	fmt.Fprintf(w, "%s %d bytes, %d blocks, replication %d, block size %d, modified %s\n",
		f.Path, f.Size, f.Blocks, f.Replication, f.BlockSize, f.MTime().Local().Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tBLOCK\tLENGTH\tSTATUS\tHOLDERS\tOWNERS")
	under, missing := 0, 0
	for i, b := range st.Blocks {
		idx := fmt.Sprint(i - 1)
		if b.Manifest {
			idx = "manifest"
		}
		status := "ok"
		switch {
		case len(b.Holders) == 0:
			status, missing = "MISSING", missing+1
		case len(b.Holders) < f.Replication || !sameSet(b.Holders, b.Owners):
			status = fmt.Sprintf("%d/%d", len(b.Holders), f.Replication)
			if len(b.Holders) < f.Replication {
				status = "UNDER " + status
				under++
			} else {
				status = "MOVING " + status
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", idx, b.ID, b.Size, status, strings.Join(b.Holders, ","), strings.Join(b.Owners, ","))
	}
	tw.Flush()
	switch {
	case missing > 0:
		fmt.Fprintf(w, "Status: CORRUPT (%d blocks missing, %d under-replicated)\n", missing, under)
	case under > 0:
		fmt.Fprintf(w, "Status: UNDER-REPLICATED (%d blocks)\n", under)
	default:
		fmt.Fprintln(w, "Status: HEALTHY")
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// putFailover tells, on w, each move of a put of dst to another agent: the
// last one stopped answering, or had no room to take a block.
func putFailover(w io.Writer, dst string) client.Failover {
	return func(from, to *client.Client, block int64, why error) {
		if errors.Is(why, client.ErrUnreachable) {
			fmt.Fprintf(w, "\nshoal: %s stopped answering during the put of %s; going on through %s from block %d\n", from, dst, to, block)
			return
		}
		fmt.Fprintf(w, "\nshoal: %s has no room for block %d of %s (%v); going on through %s\n", from, block, dst, why, to)
	}
}
