// Command tinybackbone writes the small two-tap ONNX backbone of engine/tiny,
// so that the arm64 smoke test runs a real network without the pretrained
// weights.
//
//	go run ./packaging/tinybackbone OUT.onnx
package main

import (
	"fmt"
	"os"

	"github.com/inspectd/inspectd/engine/tiny"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tinybackbone OUT.onnx")
		os.Exit(2)
	}
	if err := tiny.WriteFile(os.Args[1], 1); err != nil {
		fmt.Fprintf(os.Stderr, "tinybackbone: %v\n", err)
		os.Exit(1)
	}
}
