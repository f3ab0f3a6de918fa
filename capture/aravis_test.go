package capture

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/imageops"
)

// TestAravisToBGR converts each pixel format the software-trigger source
// reads (only Mono8 comes from the simulator) from flat test images.
func TestAravisToBGR(t *testing.T) {
	const w, h = 8, 4
	flat := func(px ...byte) []byte { return bytes.Repeat(px, w*h*len(px)/len(px)) }
	cases := []struct {
		name    string
		format  uint32
		data    []byte
		b, g, r float64
	}{
		{"Mono8", pfMono8, flat(77), 77, 77, 77},
		{"Mono16", pfMono16, flat(0x00, 0x4d), 77, 77, 77}, // little-endian 0x4d00
		{"RGB8", pfRGB8, flat(10, 20, 30), 30, 20, 10},
		{"BGR8", pfBGR8, flat(10, 20, 30), 10, 20, 30},
		{"BayerRG8 flat", pfBayerRG8, flat(50), 50, 50, 50},
		{"BayerBG8 flat", pfBayerBG8, flat(50), 50, 50, 50},
		{"BayerGR8 flat", pfBayerGR8, flat(50), 50, 50, 50},
		{"BayerGB8 flat", pfBayerGB8, flat(50), 50, 50, 50},
		// Y 90 in video range (16..235) is 86 in full range.
		{"YUV422 UYVY grey", pfYUV422UYVY, flat(128, 90, 128, 90), 86, 86, 86},
		{"YUV422 YUYV grey", pfYUV422YUYV, flat(90, 128, 90, 128), 86, 86, 86},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := gocv.NewMat()
			defer m.Close()
			if len(c.data) < w*h {
				t.Fatalf("test data of %d bytes", len(c.data))
			}
			if err := toBGR(&m, c.format, w, h, 0, c.data, 1000); err != nil {
				t.Fatal(err)
			}
			if m.Cols() != w || m.Rows() != h || m.Type() != gocv.MatTypeCV8UC3 {
				t.Fatalf("%dx%d type %v; want %dx%d BGR", m.Cols(), m.Rows(), m.Type(), w, h)
			}
			mean := m.Mean()
			for i, want := range []float64{c.b, c.g, c.r} {
				if got := []float64{mean.Val1, mean.Val2, mean.Val3}[i]; math.Abs(got-want) > 2 {
					t.Errorf("channel %d mean %.1f; want %.0f", i, got, want)
				}
			}
		})
	}
	// A Bayer image whose red sites (GenICam RG: first row R G) are bright
	// comes out red.
	bayer := make([]byte, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if y%2 == 0 && x%2 == 0 {
				bayer[y*w+x] = 200
			}
		}
	}
	m := gocv.NewMat()
	defer m.Close()
	if err := toBGR(&m, pfBayerRG8, w, h, 0, bayer, 1000); err != nil {
		t.Fatal(err)
	}
	if mean := m.Mean(); mean.Val3 < 100 || mean.Val1 > 20 {
		t.Errorf("BayerRG8 with bright R sites: mean BGR %.0f,%.0f,%.0f; want red", mean.Val1, mean.Val2, mean.Val3)
	}

	for _, c := range []struct {
		name   string
		format uint32
		w, h   int
		data   []byte
		errHas string
	}{
		{"above the pixel limit", pfMono8, 100, 100, make([]byte, 10000), "limit"},
		{"zero width", pfMono8, 0, 4, nil, "0x4"},
		{"short data", pfMono8, w, h, make([]byte, w*h-1), "holds 31 bytes, 32 expected"},
		{"unknown format", 0x010C0047, w, h, make([]byte, w*h*2), "not supported"},
	} {
		m := gocv.NewMat()
		err := toBGR(&m, c.format, c.w, c.h, 0, c.data, 1000)
		m.Close()
		if err == nil || !strings.Contains(err.Error(), c.errHas) {
			t.Errorf("%s: %v; want an error with %q", c.name, err, c.errHas)
		}
		if c.name == "above the pixel limit" && !errors.Is(err, imageops.ErrTooLarge) {
			t.Errorf("%s: %v is not imageops.ErrTooLarge", c.name, err)
		}
	}
}

// TestAravisMissing: without the library, the error names the package.
func TestAravisMissing(t *testing.T) {
	err := loadAravisLib("libaravis-0.8-missing.so.0")
	if err == nil || !strings.Contains(err.Error(), "install the Debian package libaravis-0.8-0") || !strings.Contains(err.Error(), "libaravis-0.8-missing.so.0") {
		t.Fatalf("loading a missing Aravis: %v; want an error naming the file and libaravis-0.8-0", err)
	}
	t.Log(err)
}
