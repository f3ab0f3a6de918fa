// Package featcache keeps pooled feature vectors of image files on disk, so
// an evaluation that scores the same test images again (another density,
// another T, a tuning run) does not run the backbone again. An entry is keyed
// by everything that shapes the vector: backbone checksum, feature and
// transformation settings, region of interest, the file's path, size and
// modification time, and the rotation.
package featcache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/inspectd/inspectd/internal/durable"
)

// Cache is one directory of vectors for one extraction setup.
type Cache struct {
	dir   string
	setup string // hash of the extraction setup
	dim   int
}

// Open prepares dir for vectors of length dim made by the setup described by
// setup (any JSON-encodable value naming the backbone, features, transforms
// and ROI).
func Open(dir string, dim int, setup any) (*Cache, error) {
	if dim <= 0 {
		return nil, fmt.Errorf("feature cache: vector length %d", dim)
	}
	js, err := json.Marshal(setup)
	if err != nil {
		return nil, fmt.Errorf("feature cache: describing the setup: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("feature cache: %w", err)
	}
	h := sha256.Sum256(js)
	return &Cache{dir: dir, setup: hex.EncodeToString(h[:]), dim: dim}, nil
}

// Vectors returns the vectors of the image file at path for the angles, one
// row each, computing the missing ones with compute (called at most once,
// with the missing angles in order) and storing them.
func (c *Cache) Vectors(path string, angles []float64, compute func(angles []float64) ([]float32, error)) ([]float32, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("feature cache: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("feature cache: %w", err)
	}
	out := make([]float32, len(angles)*c.dim)
	var missing []int
	names := make([]string, len(angles))
	for i, a := range angles {
		names[i] = c.entry(abs, st, a)
		if !c.read(names[i], out[i*c.dim:(i+1)*c.dim]) {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	want := make([]float64, len(missing))
	for j, i := range missing {
		want[j] = angles[i]
	}
	got, err := compute(want)
	if err != nil {
		return nil, err
	}
	if len(got) != len(missing)*c.dim {
		return nil, fmt.Errorf("feature cache: %s: got %d values for %d angles of %d", path, len(got), len(missing), c.dim)
	}
	for j, i := range missing {
		v := got[j*c.dim : (j+1)*c.dim]
		copy(out[i*c.dim:], v)
		if err := c.write(names[i], v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (c *Cache) entry(abs string, st fs.FileInfo, angle float64) string {
	h := sha256.New()
	for _, s := range []string{c.setup, abs, strconv.FormatInt(st.Size(), 10),
		strconv.FormatInt(st.ModTime().UnixNano(), 10), strconv.FormatFloat(angle, 'g', -1, 64)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	sum := hex.EncodeToString(h.Sum(nil))
	return filepath.Join(c.dir, sum[:2], sum[2:]+".f32")
}

// read fills v from an entry; a missing or wrong-sized entry is a miss.
func (c *Cache) read(name string, v []float32) bool {
	b, err := os.ReadFile(name)
	if err != nil || len(b) != 4*len(v) {
		return false
	}
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return true
}

// write stores an entry through a temporary file and a rename, so a reader
// never sees half an entry. No fsync: an entry lost in a power cut is only
// computed again.
func (c *Cache) write(name string, v []float32) (err error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("feature cache: %w", err)
	}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	err = durable.WriteFast(name, 0o644, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return fmt.Errorf("feature cache: %w", err)
	}
	return nil
}
