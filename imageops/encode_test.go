package imageops

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocv.io/x/gocv"
)

func TestEncodeRoundTrip(t *testing.T) {
	src := randomMat(t, 20, 30, gocv.MatTypeCV8UC3, 14)
	defer src.Close()
	png, err := EncodePNG(src)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(png)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !equalMats(t, m, src) {
		t.Error("PNG round trip is not lossless")
	}

	flat := gocv.NewMatWithSizeFromScalar(gocv.NewScalar(40, 80, 160, 0), 32, 32, gocv.MatTypeCV8UC3)
	defer flat.Close()
	lo, err := EncodeJPEG(src, 20)
	if err != nil {
		t.Fatal(err)
	}
	hi, err := EncodeJPEG(src, 95)
	if err != nil {
		t.Fatal(err)
	}
	if len(lo) >= len(hi) {
		t.Errorf("quality 20 gave %d bytes, quality 95 %d: quality ignored", len(lo), len(hi))
	}
	j, err := EncodeJPEG(flat, 90)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(j)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if v := d.GetVecbAt(16, 16); absDiff(v[0], 40) > 3 || absDiff(v[2], 160) > 3 {
		t.Errorf("JPEG round trip pixel %v, want about [40 80 160]", v)
	}

	empty := gocv.NewMat()
	defer empty.Close()
	for name, f := range map[string]func() ([]byte, error){
		"quality 0":   func() ([]byte, error) { return EncodeJPEG(src, 0) },
		"quality 101": func() ([]byte, error) { return EncodeJPEG(src, 101) },
		"empty jpeg":  func() ([]byte, error) { return EncodeJPEG(empty, 90) },
		"empty png":   func() ([]byte, error) { return EncodePNG(empty) },
	} {
		if _, err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jpg")
	for _, content := range []string{"first version", "second"} {
		if err := WriteFileAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the file (temp files left?)", len(entries))
	}
	err = WriteFileAtomic(filepath.Join(dir, "missing", "x.png"), []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("write into a missing directory: error %v", err)
	}
}
