package imageops

import (
	"fmt"
	"image"

	"gocv.io/x/gocv"
)

// ToCHW prepares an 8UC3 BGR image as backbone input: resized to size x size
// (aspect ratio not kept, as in the paper; see Resize), channels in RGB
// order, each value v (0..255) written as (v/255 - mean[c]) / std[c], planar
// CHW into dst, which must hold exactly 3*size*size values. mean and std are
// in RGB order.
func ToCHW(src gocv.Mat, size int, mean, std [3]float32, dst []float32) error {
	return ToCHWSize(src, size, size, mean, std, dst)
}

// Resize returns src resized to w x h (w, h > 0): INTER_AREA when the image
// shrinks (averaging; bilinear would alias fine texture, the very thing
// defects show up in) and INTER_LINEAR when it grows; when one side shrinks
// and the other grows, the change in pixel count decides.
func Resize(src gocv.Mat, w, h int) gocv.Mat {
	interp := gocv.InterpolationLinear
	if w*h < src.Cols()*src.Rows() {
		interp = gocv.InterpolationArea
	}
	dst := gocv.NewMat()
	gocv.Resize(src, &dst, image.Pt(w, h), 0, 0, interp)
	return dst
}

// ToCHWSize is ToCHW to a w x h input, for backbones fed aspect-true images;
// dst must hold exactly 3*w*h values.
func ToCHWSize(src gocv.Mat, w, h int, mean, std [3]float32, dst []float32) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("to CHW: size %dx%d must be > 0", w, h)
	}
	if len(dst) != 3*w*h {
		return fmt.Errorf("to CHW: dst holds %d values, want 3*%d*%d = %d", len(dst), w, h, 3*w*h)
	}
	if err := require8UC3(src, "to CHW"); err != nil {
		return err
	}
	for c, s := range std {
		if s == 0 {
			return fmt.Errorf("to CHW: std[%d] is zero", c)
		}
	}

	img := src
	if src.Cols() != w || src.Rows() != h {
		img = Resize(src, w, h)
		defer img.Close()
	}
	px, release, err := pixelBytes(img)
	if err != nil {
		return fmt.Errorf("to CHW: %w", err)
	}
	defer release()

	// A table per channel turns the formula into one lookup per value and
	// gives bit-for-bit the result of evaluating it in float32.
	var lut [3][256]float32
	for c := range 3 {
		for v := range 256 {
			lut[c][v] = (float32(v)/255 - mean[c]) / std[c]
		}
	}
	n := w * h
	r, g, b := dst[:n:n], dst[n:2*n:2*n], dst[2*n:3*n]
	g, b = g[:len(r)], b[:len(r)]
	px = px[:3*n]
	lr, lg, lb := &lut[0], &lut[1], &lut[2]
	for i := range r {
		p := px[3*i : 3*i+3 : 3*i+3]
		b[i] = lb[p[0]]
		g[i] = lg[p[1]]
		r[i] = lr[p[2]]
	}
	return nil
}
