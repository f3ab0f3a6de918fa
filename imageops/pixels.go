package imageops

import (
	"fmt"
	"image/color"

	"gocv.io/x/gocv"
)

var colorBlack = color.RGBA{}

// pixelBytes gives m's pixel bytes without copying when m is continuous
// (cropped views are not; those are cloned once). The bytes are valid until
// release is called, and only while m is open.
func pixelBytes(m gocv.Mat) (b []byte, release func(), err error) {
	if m.IsContinuous() {
		b, err = m.DataPtrUint8()
		return b, func() {}, err
	}
	c := m.Clone()
	b, err = c.DataPtrUint8()
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return b, func() { c.Close() }, nil
}

func require8UC3(m gocv.Mat, what string) error {
	if m.Empty() {
		return fmt.Errorf("%s: empty image", what)
	}
	if m.Type() != gocv.MatTypeCV8UC3 {
		return fmt.Errorf("%s: want an 8-bit 3-channel BGR image, got type %v", what, m.Type())
	}
	return nil
}

// CloseAll closes every Mat of ms (batches of parts or views).
func CloseAll(ms []gocv.Mat) {
	for _, m := range ms {
		m.Close()
	}
}
