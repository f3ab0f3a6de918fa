package model

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"strings"

	"github.com/inspectd/inspectd/spec"
)

// Limits on what a model file may declare. A model file is untrusted input
// (it arrives by copy, by SIGHUP, from another machine): every size in it is
// checked against these before anything is allocated from it, so a damaged
// or hostile file is refused with a reason instead of exhausting memory or
// panicking. They sit far above any model calibration makes (the default
// model is 10 MB; the paper-size flow 690 MB).
const (
	MaxFileBytes      = 2 << 30  // the model file
	MaxManifestBytes  = 16 << 20 // manifest.json, uncompressed
	MaxWeightsBytes   = 2 << 30  // weights.bin, uncompressed
	MaxTensors        = 4096     // entries in the tensor table
	MaxTensorRank     = 8        // dimensions of one tensor
	MaxTensorValues   = 1 << 29  // float32 values in one tensor (2 GiB)
	MaxTestTransforms = 256      // T
	MaxTaps           = 16       // backbone taps
	MaxScales         = 8        // input scales
	MaxHeatmapSigma   = 64       // pixels at the 224 px heatmap resolution
	MaxFeatureDim     = 1 << 16  // feature vector length
	MaxFlowBlocks     = 64       // coupling blocks
	MaxFlowHidden     = 1 << 14  // subnet width
	MaxFlowDepth      = 16       // hidden layers per subnet
	MaxGoodScores     = 1 << 20  // recorded out-of-sample scores
	zipSlackBytes     = 1 << 20  // uncompressed bytes allowed beyond the ratio
	zipMaxRatio       = 4        // uncompressed / file size (stored members: 1)
	maxNameBytes      = 256      // a tensor name
	maxROIBytes       = 64       // "x,y,w,h"
	maxThresholdValue = 1e300    // finite and usable in arithmetic
	maxBackboneName   = 4096     // backbone file name
	maxMethodBytes    = 64       // method name
	maxCandidates     = 64       // transformation candidates recorded
)

// MethodBounds checks one method's stored configuration (Manifest.MethodConfig)
// against limits before the density is built from it. weights is the number
// of float32 values in weights.bin: a configuration that needs more
// parameters than the file holds is refused before anything is allocated.
type MethodBounds func(raw json.RawMessage, weights int) error

// methodBounds holds the bounds of each known method. A new Method adds its
// entry here (or through RegisterBounds); a method without one gets only the
// generic checks, and loading its density refuses what it does not know.
var methodBounds = map[Method]MethodBounds{
	Flow:     flowBounds,
	Gaussian: gaussianBounds,
}

// RegisterBounds sets the bounds check of a method (for methods defined
// outside this package). Call it from an init function.
func RegisterBounds(m Method, b MethodBounds) { methodBounds[m] = b }

// HasBounds says whether a method has its bounds check (tests assert that
// every method does).
func HasBounds(m Method) bool { return methodBounds[m] != nil }

// Validate checks every size and number in the manifest against the limits
// above; weights is the number of float32 values in weights.bin (negative:
// not known, skip the checks that need it). It names the first problem.
func (m *Manifest) Validate(weights int) error {
	if err := m.Features.Validate(); err != nil {
		return err
	}
	if n := len(m.Features.Taps); n > MaxTaps {
		return fmt.Errorf("features: %d taps, at most %d", n, MaxTaps)
	}
	for _, tap := range m.Features.Taps {
		if len(tap) > maxNameBytes {
			return fmt.Errorf("features: tap name of %d bytes, at most %d", len(tap), maxNameBytes)
		}
	}
	if n := len(m.Features.Scales); n > MaxScales {
		return fmt.Errorf("features: %d scales, at most %d", n, MaxScales)
	}
	for i := range 3 {
		for name, v := range map[string]float32{"mean": m.Features.Mean[i], "std": m.Features.Std[i]} {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("features: normalisation %s[%d] = %v is not finite", name, i, v)
			}
		}
	}
	if err := m.Transforms.Validate(); err != nil {
		return err
	}
	for name, v := range map[string]float64{"max angle": m.Transforms.MaxAngle, "heatmap_sigma": m.HeatmapSigma,
		"heatmap_good": m.HeatmapGood, "threshold": m.Threshold.Value} {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxThresholdValue {
			return fmt.Errorf("%s %v is not a finite number", name, v)
		}
	}
	if m.TestTransforms < 0 || m.TestTransforms > MaxTestTransforms {
		return fmt.Errorf("test_transforms %d outside 0..%d", m.TestTransforms, MaxTestTransforms)
	}
	if m.HeatmapSigma < 0 || m.HeatmapSigma > MaxHeatmapSigma {
		return fmt.Errorf("heatmap_sigma %g outside 0..%d pixels", m.HeatmapSigma, MaxHeatmapSigma)
	}
	if len(m.ROI) > maxROIBytes {
		return fmt.Errorf("roi of %d bytes, at most %d", len(m.ROI), maxROIBytes)
	}
	if m.ROI != "" {
		if _, err := spec.ParseROI(m.ROI); err != nil {
			return err
		}
	}
	if len(m.Backbone.File) > maxBackboneName {
		return fmt.Errorf("backbone file name of %d bytes, at most %d", len(m.Backbone.File), maxBackboneName)
	}
	if n := len(m.Training.GoodScores); n > MaxGoodScores {
		return fmt.Errorf("training: %d good scores, at most %d", n, MaxGoodScores)
	}
	if len(m.Training.Parent) > maxNameBytes {
		return fmt.Errorf("training: parent model id of %d bytes, at most %d", len(m.Training.Parent), maxNameBytes)
	}
	if err := m.Training.Shape.validate(); err != nil {
		return err
	}
	if c := m.Training.Choice; c != nil {
		if n := len(c.Candidates); n > maxCandidates {
			return fmt.Errorf("training: %d transformation candidates, at most %d", n, maxCandidates)
		}
		for _, e := range append([]CandidateEvidence{{Name: c.Chosen}}, c.Candidates...) {
			if len(e.Name) > maxNameBytes {
				return fmt.Errorf("training: transformation candidate name of %d bytes, at most %d", len(e.Name), maxNameBytes)
			}
		}
	}
	if len(m.Method) > maxMethodBytes || strings.ContainsFunc(string(m.Method), func(r rune) bool { return r < ' ' || r > '~' }) {
		return fmt.Errorf("method name %.64q is not a short printable name", m.Method)
	}
	if b := methodBounds[m.Method]; b != nil {
		if err := b(m.MethodConfig, weights); err != nil {
			return fmt.Errorf("method %s: %w", m.Method, err)
		}
	}
	if n := len(m.Tensors); n > MaxTensors {
		return fmt.Errorf("%d tensors, at most %d", n, MaxTensors)
	}
	names := make(map[string]bool, len(m.Tensors))
	for _, ti := range m.Tensors {
		if len(ti.Name) > maxNameBytes {
			return fmt.Errorf("tensor name of %d bytes, at most %d", len(ti.Name), maxNameBytes)
		}
		if names[ti.Name] {
			return fmt.Errorf("tensor %q listed twice", ti.Name)
		}
		names[ti.Name] = true
		n, err := TensorSize(ti.Shape)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", ti.Name, err)
		}
		if weights >= 0 && !fits(ti.Offset, n, weights) {
			return fmt.Errorf("tensor %s (%v at %d) lies outside the %d weights", ti.Name, ti.Shape, ti.Offset, weights)
		}
	}
	return nil
}

// TensorSize is the number of values of a tensor of this shape, refusing
// negative dimensions, too many of them, and products above MaxTensorValues
// (computed without overflow).
func TensorSize(shape []int) (int, error) {
	if len(shape) > MaxTensorRank {
		return 0, fmt.Errorf("shape %v has %d dimensions, at most %d", shape, len(shape), MaxTensorRank)
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		var ok bool
		if n, ok = mulBounded(n, d, MaxTensorValues); !ok {
			return 0, fmt.Errorf("shape %v holds more than %d values", shape, MaxTensorValues)
		}
	}
	return n, nil
}

// mulBounded is a*b for a, b >= 0 when it is at most limit.
func mulBounded(a, b, limit int) (int, bool) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > uint64(limit) {
		return 0, false
	}
	return int(lo), true
}

// fits says whether n values at offset lie inside total values, without
// overflow for any offset.
func fits(offset, n, total int) bool {
	return offset >= 0 && offset <= total && n <= total-offset
}

// flowConfig mirrors the JSON the flow method stores (pooled.FlowMethod:
// flow.Config's fields without tags, plus whiten).
type flowConfig struct {
	Dim, Blocks, Hidden, Depth int
	Clamp                      float64
	Cond                       int
}

func flowBounds(raw json.RawMessage, weights int) error {
	var c flowConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	for _, b := range []struct {
		name     string
		v, lo, h int
	}{{"Dim", c.Dim, 2, MaxFeatureDim}, {"Blocks", c.Blocks, 1, MaxFlowBlocks},
		{"Hidden", c.Hidden, 1, MaxFlowHidden}, {"Depth", c.Depth, 1, MaxFlowDepth}} {
		if b.v < b.lo || b.v > b.h {
			return fmt.Errorf("%s %d outside %d..%d", b.name, b.v, b.lo, b.h)
		}
	}
	if math.IsNaN(c.Clamp) || math.IsInf(c.Clamp, 0) || c.Clamp < 0 || c.Clamp > 1e6 {
		//lint:ignore ST1005 names the field, like the bounds above
		return fmt.Errorf("Clamp %v outside 0..1e6", c.Clamp)
	}
	// The pooled flow has no condition; one declared here would widen every
	// subnet beyond the parameter count checked below.
	if c.Cond != 0 {
		return fmt.Errorf("condition width %d: the pooled flow is unconditional", c.Cond)
	}
	// The parameters flow.New allocates: per block two subnets, each
	// in -> Hidden, (Depth-1) x Hidden -> Hidden, Hidden -> out, with biases.
	// With the limits above this cannot overflow (< 2^50).
	n1, n2, h := c.Dim/2, c.Dim-c.Dim/2, c.Hidden
	subnet := func(in, out int) int { return in*h + h + (c.Depth-1)*(h*h+h) + h*out + out }
	params := c.Blocks * (subnet(n2, 2*n1) + subnet(n1, 2*n2))
	if weights >= 0 && params > weights {
		//lint:ignore ST1005 names the fields, like the bounds above
		return fmt.Errorf("Dim %d, Blocks %d, Hidden %d, Depth %d need %d parameters; the file holds %d values",
			c.Dim, c.Blocks, c.Hidden, c.Depth, params, weights)
	}
	return nil
}

func gaussianBounds(raw json.RawMessage, weights int) error {
	if len(raw) == 0 {
		return nil
	}
	var c struct {
		Dim       int     `json:"dim"`
		Shrinkage float64 `json:"shrinkage"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if c.Dim < 0 || c.Dim > MaxFeatureDim {
		return fmt.Errorf("dim %d outside 0..%d", c.Dim, MaxFeatureDim)
	}
	if math.IsNaN(c.Shrinkage) || c.Shrinkage < 0 || c.Shrinkage > 1 {
		return fmt.Errorf("shrinkage %v outside 0..1", c.Shrinkage)
	}
	return nil
}
