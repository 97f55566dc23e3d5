package cli

import (
	"fmt"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// uiCommand is `shoal ui`: a one-time link into the agent's web console.
func uiCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "ui",
		Usage: "print a one-time link that logs a browser into the web console of the agent at --addr",
		Flags: clientFlags(),
		Action: func(c *ucli.Context) error {
			if err := exactArgs(c, 0, ""); err != nil {
				return err
			}
			cl, err := dial(c)
			if err != nil {
				return err
			}
			l, err := cl.ConsoleLink(c.Context)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, strings.TrimSuffix(cl.Addr(), "/")+l.Path)
			fmt.Fprintf(c.App.ErrWriter, "open it within 5 minutes, once; it logs the browser in for 12 hours (until %s restarts)\n", cl.Addr())
			return nil
		},
	}
}
