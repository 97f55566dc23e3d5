// Command wordcount is Shoal's built-in wordcount compiled into a program
// of its own under the name "shippedwordcount": the same code, run as a
// shipped job, for comparing the cost of shipping (BenchmarkShipped).
package main

import (
	"os"

	"shoal.dev/shoal/cli"
	"shoal.dev/shoal/job"
	"shoal.dev/shoal/job/builtin"
)

func main() { os.Exit(cli.Main(os.Args, Spec())) }

// Spec is the built-in wordcount's spec, renamed.
func Spec() job.Spec {
	r := job.NewRegistry()
	builtin.Register(r)
	s, _ := r.Lookup("wordcount")
	s.Name = "shippedwordcount"
	s.Usage = "the built-in wordcount, shipped"
	return s
}
