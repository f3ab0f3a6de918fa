// Command inspectd is an edge inspection daemon: DifferNet anomaly detection on
// camera frames with MQTT defect events. See README.md.
package main

import (
	"os"

	"github.com/inspectd/inspectd/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
