//go:build matprofile

package daemon_test

import "gocv.io/x/gocv"

// liveMats counts Mats not yet closed; -1 when the build cannot count.
func liveMats() int { return gocv.MatProfile.Count() }
