// Command shoal is a masterless MapReduce engine and block store.
package main

import (
	"os"

	"shoal.dev/shoal/cli"
)

func main() {
	os.Exit(cli.Run(os.Args))
}
