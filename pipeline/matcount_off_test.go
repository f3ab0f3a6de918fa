//go:build !matprofile

package pipeline_test

func liveMats() int { return -1 }

func matProfile() string { return "" }
