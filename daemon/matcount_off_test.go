//go:build !matprofile

package daemon_test

func liveMats() int { return -1 }
