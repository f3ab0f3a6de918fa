//go:build matprofile

package pipeline_test

import (
	"bytes"

	"gocv.io/x/gocv"
)

// liveMats counts Mats not yet closed; -1 when the build cannot count.
func liveMats() int { return gocv.MatProfile.Count() }

// matProfile lists where the live Mats were created.
func matProfile() string {
	var b bytes.Buffer
	gocv.MatProfile.WriteTo(&b, 1)
	return b.String()
}
