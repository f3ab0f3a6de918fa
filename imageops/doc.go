// Package imageops is the image work the DifferNet pipeline needs on top of
// GoCV: decoding to one canonical pixel format (8-bit BGR), regions of
// interest, the rotations and colour jitter used as transformations, the
// conversion to the backbone's input tensor, float heatmap helpers and the
// overlay sent with alerts, and encoding plus atomic file writes.
//
// Every function that returns a gocv.Mat returns a new Mat the caller owns
// and must Close; inputs are never modified or closed.
//
// Heatmaps are plain row-major []float32 slices of h*w values rather than
// 32FC1 Mats: they are produced and averaged in Go by the pipeline, and a
// slice needs no Close.
package imageops
