// Package model reads and writes calibrated models. A model is one zip file
// with two members:
//
//   - manifest.json: readable settings (format version, backbone file name and
//     sha256, taps, scales, normalisation, transformations, method and its
//     configuration, threshold and how it was chosen, training statistics) and
//     the table of tensors;
//   - weights.bin: the tensors back to back, each little-endian IEEE-754
//     float32 in row-major order, at the offset (in values) the manifest gives.
//
// Its sha256 is in the manifest and is checked on load. Zip is used because
// every operator has a tool to look inside (`unzip -p model.zip manifest.json`)
// and Go reads it without dependencies; members are stored, not compressed,
// since float weights do not compress.
package model

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/inspectd/inspectd/internal/durable"
	"github.com/inspectd/inspectd/spec"
)

// FormatName and FormatVersion identify the file; Load refuses other versions.
const (
	FormatName    = "inspectd-model"
	FormatVersion = 1
)

// Method names the density estimator over the features.
type Method string

const (
	Flow     Method = "flow"
	Gaussian Method = "gaussian"
)

// Backbone identifies the network the features came from.
type Backbone struct {
	File   string `json:"file"` // base name, for people; the checksum decides
	SHA256 string `json:"sha256"`
}

// Threshold is the decision boundary and how it was chosen.
type Threshold struct {
	Value        float64 `json:"value"`
	Method       string  `json:"method"` // e.g. "kfold-lognormal", "override"
	TargetFRR    float64 `json:"target_frr"`
	Samples      int     `json:"samples"`
	EmpiricalFRR float64 `json:"empirical_frr"`
	Folds        int     `json:"folds,omitempty"`
	// PredictedFRR is the false-reject rate the tail model predicts at
	// Value, with an 80% band (PredictedLow..PredictedHigh) from bootstrap
	// refits: sixteen scores pin a 1% tail down only so far.
	PredictedFRR  float64        `json:"predicted_frr,omitempty"`
	PredictedLow  float64        `json:"predicted_frr_low,omitempty"`
	PredictedHigh float64        `json:"predicted_frr_high,omitempty"`
	Table         []ThresholdRow `json:"table,omitempty"`
}

// ThresholdRow is the threshold for one target false-reject rate and what
// the tail model predicts there (evalstats.FRRTable).
type ThresholdRow struct {
	TargetFRR    float64 `json:"target_frr"`
	Threshold    float64 `json:"threshold"`
	PredictedFRR float64 `json:"predicted_frr"`
	Low          float64 `json:"predicted_frr_low"`
	High         float64 `json:"predicted_frr_high"`
}

// Training records what calibration did, for audits.
type Training struct {
	Images int `json:"images"`
	// Views is how many views of each part were trained on (the part and
	// Views-1 random transformations of it, Manifest.Transforms).
	Views      int       `json:"views,omitempty"`
	Vectors    int       `json:"vectors"`
	Epochs     int       `json:"epochs,omitempty"`
	FinalLoss  float64   `json:"final_loss,omitempty"`
	Seconds    float64   `json:"seconds"`
	Seed       int64     `json:"seed"`
	GoodScores []float64 `json:"good_scores,omitempty"` // out-of-sample, sorted
	Created    time.Time `json:"created"`
	Host       string    `json:"host,omitempty"`
	// Choice is how the transformations were chosen, when calibration
	// compared candidate sets (patch methods by default).
	Choice *TransformChoice `json:"transform_choice,omitempty"`
	// ConfirmedGood counts parts added after calibration because an
	// operator confirmed them good; Parent is the model they were added to.
	ConfirmedGood int    `json:"confirmed_good,omitempty"`
	Parent        string `json:"parent,omitempty"`
	// Shape is the good parts' range of aspect ratios (after the ROI), so
	// that a part on the line far outside it is flagged: a wrong crop,
	// another product or a moved camera still gets a score, and the score
	// alone does not say it was measured on something the model never saw.
	Shape *PartShape `json:"shape,omitempty"`
}

// PartShape is the range of the good parts' aspect ratios (width / height).
type PartShape struct {
	AspectMin    float64 `json:"aspect_min"`
	AspectMedian float64 `json:"aspect_median"`
	AspectMax    float64 `json:"aspect_max"`
}

// AspectTolerance is how far (as a ratio) a part's aspect ratio may lie
// outside the good parts' before it counts as another shape: crops of one
// product by hand or by a part detector differ by a few percent, a part a
// quarter wider is another view or another product.
const AspectTolerance = 1.25

// maxAspect bounds recorded aspect ratios: a 1000:1 strip is already no
// camera's view of a part.
const maxAspect = 1000

// OffShape says how a part of w x h pixels lies outside the good parts'
// aspect ratios by more than AspectTolerance, for a log line or an event,
// and is empty when it does not. A manifest without a recorded shape (older
// models) flags nothing.
func (s *PartShape) OffShape(w, h int) string {
	if s == nil || w < 1 || h < 1 {
		return ""
	}
	a := float64(w) / float64(h)
	if a*AspectTolerance >= s.AspectMin && a <= s.AspectMax*AspectTolerance {
		return ""
	}
	return fmt.Sprintf("part of %dx%d px has aspect ratio %.3g, outside the good parts' %.3g-%.3g by more than %g times: a wrong crop, another product or a moved camera?",
		w, h, a, s.AspectMin, s.AspectMax, AspectTolerance)
}

func (s *PartShape) validate() error {
	if s == nil {
		return nil
	}
	ok := func(v float64) bool { return v >= 1.0/maxAspect && v <= maxAspect }
	if !ok(s.AspectMin) || !ok(s.AspectMedian) || !ok(s.AspectMax) || s.AspectMin > s.AspectMedian || s.AspectMedian > s.AspectMax {
		return fmt.Errorf("training: part shape aspect ratios %g / %g / %g must be ordered and within 1/%d..%d",
			s.AspectMin, s.AspectMedian, s.AspectMax, maxAspect, maxAspect)
	}
	return nil
}

// TransformChoice records the candidate transformation sets calibration
// tried on the good parts and the evidence it chose by, so an audit can see
// why a product was treated as rotation-invariant or not.
type TransformChoice struct {
	Chosen string `json:"chosen"`
	// Probes is how many synthetic small defects, drawn on the good parts,
	// each candidate was judged on.
	Probes     int                 `json:"probes"`
	Candidates []CandidateEvidence `json:"candidates"`
}

// CandidateEvidence is one candidate's result: the share of probes above
// the threshold its own leave-one-out good scores give at the target
// false-reject rate, and the median of log(probe score / that threshold).
type CandidateEvidence struct {
	Name         string  `json:"name"`
	TrainViews   int     `json:"train_views"`
	Threshold    float64 `json:"threshold"`
	Caught       float64 `json:"caught"`
	MedianMargin float64 `json:"median_margin"`
}

// TensorInfo locates one tensor in weights.bin.
type TensorInfo struct {
	Name   string `json:"name"`
	Shape  []int  `json:"shape"`
	Offset int    `json:"offset"` // in float32 values
}

// Manifest is manifest.json.
type Manifest struct {
	Format         string          `json:"format"`
	Version        int             `json:"version"`
	ID             string          `json:"id"` // first 12 hex digits of the weights' sha256
	Backbone       Backbone        `json:"backbone"`
	Features       spec.Features   `json:"features"`
	ROI            string          `json:"roi,omitempty"` // "x,y,w,h" in source pixels
	Transforms     spec.Transforms `json:"transforms"`
	TestTransforms int             `json:"test_transforms"`
	Method         Method          `json:"method"`
	MethodConfig   json.RawMessage `json:"method_config,omitempty"`
	HeatmapSigma   float64         `json:"heatmap_sigma"`
	// HeatmapGood is the heat level good parts reach: the overlay's cold end,
	// so typical good variation never looks like a defect.
	HeatmapGood   float64      `json:"heatmap_good"`
	Threshold     Threshold    `json:"threshold"`
	Training      Training     `json:"training"`
	Tensors       []TensorInfo `json:"tensors"`
	WeightsSHA256 string       `json:"weights_sha256"`
}

// Tensor is a named float32 array.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// Model is a loaded model.
type Model struct {
	Manifest Manifest
	Tensors  map[string]Tensor
}

// Tensor returns the named tensor or an error naming what is missing.
func (m *Model) Tensor(name string) (Tensor, error) {
	t, ok := m.Tensors[name]
	if !ok {
		return Tensor{}, fmt.Errorf("model %s has no tensor %q", m.Manifest.ID, name)
	}
	return t, nil
}

// FromTensors makes an in-memory model (as Load would return after Save).
func FromTensors(man Manifest, tensors []Tensor) *Model {
	m := &Model{Manifest: man, Tensors: map[string]Tensor{}}
	for _, t := range tensors {
		m.Tensors[t.Name] = t
	}
	return m
}

// Save writes the manifest and tensors to path atomically: a crash or error
// leaves any earlier file at path untouched.
func Save(path string, man Manifest, tensors []Tensor) error {
	var weights bytes.Buffer
	man.Tensors = man.Tensors[:0]
	off := 0
	for _, t := range tensors {
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("saving model: tensor %s: shape %v holds %d values, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		if err := binary.Write(&weights, binary.LittleEndian, t.Data); err != nil {
			return fmt.Errorf("saving model: encoding %s: %w", t.Name, err)
		}
		man.Tensors = append(man.Tensors, TensorInfo{Name: t.Name, Shape: t.Shape, Offset: off})
		off += n
	}
	sum := sha256.Sum256(weights.Bytes())
	man.Format, man.Version = FormatName, FormatVersion
	man.WeightsSHA256 = hex.EncodeToString(sum[:])
	man.ID = man.WeightsSHA256[:12]
	js, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return fmt.Errorf("saving model: encoding manifest: %w", err)
	}
	// 0644 less the umask: under the unit's UMask=0027 the model is 0640.
	return durable.Write(path, 0o644, func(f io.Writer) error {
		zw := zip.NewWriter(f)
		for _, m := range []struct {
			name string
			data []byte
		}{{"manifest.json", append(js, '\n')}, {"weights.bin", weights.Bytes()}} {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: m.name, Method: zip.Store, Modified: man.Training.Created})
			if err != nil {
				return err
			}
			if _, err := w.Write(m.data); err != nil {
				return err
			}
		}
		return zw.Close()
	})
}

// ErrFormat marks a file that is not a model this version can read.
var ErrFormat = errors.New("not a usable inspectd model")

// Load reads and checks a model file: format and version, the weights'
// checksum, and every size the manifest declares (Manifest.Validate), so
// that a damaged or hostile file is refused with a reason, never a panic or
// an allocation larger than the file warrants. The zip's members are checked
// before they are read: duplicates are refused, and their uncompressed sizes
// are bounded by the file's size (a small zip that inflates to gigabytes is
// refused from its directory alone).
func Load(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("model %s does not exist", path)
		}
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("model %s: %w: not a regular file", path, ErrFormat)
	}
	m, err := read(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return m, nil
}

// read is Load on an open file of the given size; errors wrap ErrFormat.
func read(r io.ReaderAt, size int64) (*Model, error) {
	if size > MaxFileBytes {
		return nil, fmt.Errorf("%w: file is %d bytes, at most %d", ErrFormat, size, int64(MaxFileBytes))
	}
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	members := map[string]*zip.File{}
	var total uint64
	for _, zf := range zr.File {
		if members[zf.Name] != nil {
			return nil, fmt.Errorf("%w: member %q appears twice", ErrFormat, zf.Name)
		}
		members[zf.Name] = zf
		total += min(zf.UncompressedSize64, 1<<62) // no wrap-around over many members
	}
	// Save stores members uncompressed; a tool that recompresses the file
	// gains little on float weights. Anything beyond this is a zip bomb.
	if limit := uint64(zipMaxRatio)*uint64(size) + zipSlackBytes; total > limit {
		return nil, fmt.Errorf("%w: members declare %d bytes uncompressed in a file of %d bytes (at most %d)", ErrFormat, total, size, limit)
	}
	readMember := func(name string, limit int64) ([]byte, error) {
		zf := members[name]
		if zf == nil {
			return nil, fmt.Errorf("%w: member %s missing", ErrFormat, name)
		}
		if zf.UncompressedSize64 > uint64(limit) {
			return nil, fmt.Errorf("%w: %s declares %d bytes, at most %d", ErrFormat, name, zf.UncompressedSize64, limit)
		}
		rc, err := zf.Open()
		if err != nil {
			return nil, fmt.Errorf("%w: opening %s: %v", ErrFormat, name, err)
		}
		defer rc.Close()
		// The declared size is a claim: read at most one byte beyond it.
		buf := bytes.NewBuffer(make([]byte, 0, min(zf.UncompressedSize64, uint64(size))))
		if _, err := buf.ReadFrom(io.LimitReader(rc, int64(zf.UncompressedSize64)+1)); err != nil {
			return nil, fmt.Errorf("%w: reading %s: %v", ErrFormat, name, err)
		}
		if uint64(buf.Len()) != zf.UncompressedSize64 {
			return nil, fmt.Errorf("%w: %s holds more or fewer bytes than its declared %d", ErrFormat, name, zf.UncompressedSize64)
		}
		return buf.Bytes(), nil
	}
	js, err := readMember("manifest.json", MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	var man Manifest
	if err := json.Unmarshal(js, &man); err != nil {
		return nil, fmt.Errorf("%w: manifest.json: %v", ErrFormat, err)
	}
	if man.Format != FormatName {
		return nil, fmt.Errorf("%w: format %.64q, want %q", ErrFormat, man.Format, FormatName)
	}
	if man.Version != FormatVersion {
		return nil, fmt.Errorf("%w: format version %d, this inspectd reads version %d", ErrFormat, man.Version, FormatVersion)
	}
	wb, err := readMember("weights.bin", MaxWeightsBytes)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(wb)
	if got := hex.EncodeToString(sum[:]); got != man.WeightsSHA256 {
		return nil, fmt.Errorf("%w: weights checksum %s does not match manifest %.64q (file damaged)", ErrFormat, got, man.WeightsSHA256)
	}
	if len(wb)%4 != 0 {
		return nil, fmt.Errorf("%w: weights.bin is %d bytes, not whole float32 values", ErrFormat, len(wb))
	}
	all := make([]float32, len(wb)/4)
	if err := man.Validate(len(all)); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrFormat, err)
	}
	for i := range all {
		all[i] = math.Float32frombits(binary.LittleEndian.Uint32(wb[4*i:]))
	}
	m := &Model{Manifest: man, Tensors: map[string]Tensor{}}
	for _, ti := range man.Tensors {
		n, _ := TensorSize(ti.Shape) // checked by Validate
		m.Tensors[ti.Name] = Tensor{Name: ti.Name, Shape: ti.Shape, Data: all[ti.Offset : ti.Offset+n : ti.Offset+n]}
	}
	return m, nil
}

// FindBackbone locates a backbone by the file name a model records (or a
// method's default names) in dirs, in order. A name that is a path is taken
// as it is; an empty name, or one found nowhere, gives fallback, whose
// checksum then decides. config.Runtime says which dirs and fallback.
func FindBackbone(name, fallback string, dirs ...string) string {
	if name == "" {
		return fallback
	}
	if filepath.Base(name) != name {
		return name
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			if abs, err := filepath.Abs(p); err == nil {
				return abs
			}
			return p
		}
	}
	return fallback
}

// FileSHA256 is the hex sha256 of a file (used for the backbone).
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// PrevSuffix names the previous version SaveVersion keeps beside a model.
const PrevSuffix = ".prev"

// SaveVersion saves a new version of the model at path, keeping the file it
// replaces at path+PrevSuffix for rollback (mv it back and reload). Both
// writes are atomic: a crash leaves either version whole at path.
func SaveVersion(path string, man Manifest, tensors []Tensor) error {
	old, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("keeping the previous model: %w", err)
	default:
		err := durable.Write(path+PrevSuffix, 0o644, func(w io.Writer) error {
			_, err := io.Copy(w, io.LimitReader(old, MaxFileBytes+1))
			return err
		})
		old.Close()
		if err != nil {
			return fmt.Errorf("keeping the previous model: %w", err)
		}
	}
	return Save(path, man, tensors)
}
