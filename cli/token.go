package cli

import (
	"errors"
	"fmt"

	ucli "github.com/urfave/cli/v2"
)

func tokenCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "token",
		Usage: "print the cluster's API token, for WebHDFS clients (delegation=TOKEN) and curl (Authorization: Bearer TOKEN)",
		Flags: clientFlags(),
		Action: func(c *ucli.Context) error {
			if err := exactArgs(c, 0, ""); err != nil {
				return err
			}
			sec, err := loadSecret(c)
			if err != nil {
				return err
			}
			if sec.IsZero() {
				return errors.New("no cluster secret: give --secret-file FILE, SHOAL_SECRET_FILE or SHOAL_SECRET (a cluster without a secret needs no token)")
			}
			fmt.Fprintln(c.App.Writer, sec.APIToken())
			return nil
		},
	}
}

func fsMvCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "mv",
		Usage:     "move or rename a file or directory (into DST when DST is a directory); blocks stay where they are",
		ArgsUsage: "SRC DST",
		Flags:     clientFlags(),
		Action: func(c *ucli.Context) error {
			if err := exactArgs(c, 2, "SRC DST"); err != nil {
				return err
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			ri, err := cl.Rename(c.Context, c.Args().Get(0), c.Args().Get(1))
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "moved %s to %s\n", ri.Src, ri.Dst)
			return nil
		},
	}
}
