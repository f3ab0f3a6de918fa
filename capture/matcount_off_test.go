//go:build !matprofile

package capture

func liveMats() int { return -1 }
