package featcache

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// fake computes a vector per angle whose values encode the angle and how many
// times it has been called, so a stale or wrong entry is visible.
type fake struct {
	calls int
	asked [][]float64
	fail  error
}

func (f *fake) compute(dim int) func([]float64) ([]float32, error) {
	return func(angles []float64) ([]float32, error) {
		f.calls++
		f.asked = append(f.asked, append([]float64(nil), angles...))
		if f.fail != nil {
			return nil, f.fail
		}
		out := make([]float32, 0, len(angles)*dim)
		for _, a := range angles {
			for j := range dim {
				out = append(out, float32(a)*10+float32(j)+float32(f.calls)*1000)
			}
		}
		return out, nil
	}
}

func TestVectors(t *testing.T) {
	const dim = 3
	dir := t.TempDir()
	img := filepath.Join(dir, "part.png")
	if err := os.WriteFile(img, []byte("pixels"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Open(filepath.Join(dir, "cache"), dim, map[string]string{"backbone": "abc"})
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{}
	first, err := c.Vectors(img, []float64{-10, 0, 10}, f.compute(dim))
	if err != nil || f.calls != 1 {
		t.Fatalf("first call: err %v, %d computations", err, f.calls)
	}
	// A second request reuses the three stored angles and computes only the new one.
	second, err := c.Vectors(img, []float64{10, 5, -10, 0}, f.compute(dim))
	if err != nil {
		t.Fatal(err)
	}
	if f.calls != 2 || !slices.Equal(f.asked[1], []float64{5}) {
		t.Fatalf("second call computed %v; want only angle 5", f.asked)
	}
	if !slices.Equal(second[0:dim], first[2*dim:3*dim]) || !slices.Equal(second[2*dim:3*dim], first[0:dim]) {
		t.Errorf("stored vectors came back in the wrong rows: %v vs %v", second, first)
	}
	if second[dim] != 5*10+0+2000 {
		t.Errorf("new angle's vector %v, want the second computation's", second[dim:2*dim])
	}

	// Another setup (another backbone) shares nothing.
	other, _ := Open(filepath.Join(dir, "cache"), dim, map[string]string{"backbone": "def"})
	g := &fake{}
	if _, err := other.Vectors(img, []float64{0}, g.compute(dim)); err != nil || g.calls != 1 {
		t.Errorf("other setup: err %v, %d computations; want a miss", err, g.calls)
	}

	// A changed image file is a miss.
	if err := os.Chtimes(img, time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	h := &fake{}
	if _, err := c.Vectors(img, []float64{0}, h.compute(dim)); err != nil || h.calls != 1 {
		t.Errorf("modified image: err %v, %d computations; want a miss", err, h.calls)
	}
}

func TestVectorsErrors(t *testing.T) {
	const dim = 2
	dir := t.TempDir()
	img := filepath.Join(dir, "part.png")
	os.WriteFile(img, []byte("x"), 0o644)
	c, err := Open(filepath.Join(dir, "cache"), dim, "setup")
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("backbone failed")
	cases := []struct {
		name    string
		path    string
		compute func([]float64) ([]float32, error)
	}{
		{"missing image", filepath.Join(dir, "nope.png"), (&fake{}).compute(dim)},
		{"compute fails", img, (&fake{fail: boom}).compute(dim)},
		{"short result", img, func(a []float64) ([]float32, error) { return make([]float32, dim), nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Vectors(tc.path, []float64{0, 1}, tc.compute); err == nil {
				t.Fatal("no error")
			}
		})
	}
	// Nothing was stored by the failures: the next call computes both angles.
	f := &fake{}
	if _, err := c.Vectors(img, []float64{0, 1}, f.compute(dim)); err != nil || len(f.asked) != 1 || len(f.asked[0]) != 2 {
		t.Errorf("after failures: err %v, asked %v; want both angles computed", err, f.asked)
	}
	// A truncated entry is recomputed, not read.
	var entries []string
	filepath.Walk(filepath.Join(dir, "cache"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			entries = append(entries, p)
		}
		return nil
	})
	if len(entries) != 2 {
		t.Fatalf("%d entries stored, want 2", len(entries))
	}
	os.WriteFile(entries[0], []byte{1, 2, 3}, 0o644)
	g := &fake{}
	if _, err := c.Vectors(img, []float64{0, 1}, g.compute(dim)); err != nil || len(g.asked) != 1 || len(g.asked[0]) != 1 {
		t.Errorf("after truncating one entry: err %v, asked %v; want one angle computed", err, g.asked)
	}
	if _, err := Open(filepath.Join(dir, "c2"), 0, "x"); err == nil {
		t.Error("Open accepted vector length 0")
	}
}
