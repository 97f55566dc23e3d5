package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"
)

func fsConflictsCommand() *ucli.Command {
	return &ucli.Command{
		Name:   "conflicts",
		Usage:  "list files written on both sides of a network partition: which write is read, and where the other is kept",
		Flags:  clientFlags(),
		Action: fsConflicts,
	}
}

func fsConflicts(c *ucli.Context) error {
	if err := exactArgs(c, 0, ""); err != nil {
		return err
	}
	cl, err := dial(c)
	if err != nil {
		return err
	}
	cs, err := cl.Conflicts(c.Context)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		fmt.Fprintln(c.App.Writer, "no conflicts")
		return nil
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tREAD (WRITER, SIZE, WRITTEN)\tOTHER WRITE KEPT AS\tITS WRITER, SIZE, WRITTEN")
	for _, x := range cs {
		fmt.Fprintf(tw, "%s\t%s, %d, %s\t%s\t%s, %d, %s\n", x.Path,
			x.WinnerVersion.Node, x.Winner.Size, x.WinnerVersion.Time().Local().Format(time.DateTime),
			x.Copy, x.LoserVersion.Node, x.Loser.Size, x.LoserVersion.Time().Local().Format(time.DateTime))
	}
	return tw.Flush()
}
