package engine_test

import "image"

func image2(n int) image.Point { return image.Pt(n, n) }
