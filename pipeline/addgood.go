package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"gocv.io/x/gocv"

	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
)

// ErrCannotLearn says a model's method cannot take confirmed-good parts
// without a recalibration (the pooled flow and Gaussian would need
// refitting; patch banks extend).
var ErrCannotLearn = errors.New("the model's method cannot take confirmed-good parts without recalibrating")

// AddGood returns a new version of m, the inspector's model as loaded from
// its file, that also knows the confirmed-good
// parts (whole images as captured; the model's ROI is applied here, as
// Inspect does), and how many reference rows they added (0: the parts were
// covered already, and the new version differs only in its record). m is
// not changed; the threshold and position norm are kept, since they come
// from the calibration's leave-one-out scores. The caller saves the result
// (model.SaveVersion keeps the previous file for rollback).
func (in *Inspector) AddGood(ctx context.Context, m *model.Model, parts []gocv.Mat) (model.Manifest, []model.Tensor, int, error) {
	man := m.Manifest
	if man.ID != in.man.ID {
		return man, nil, 0, fmt.Errorf("adding good parts: model %s is not the inspector's %s", man.ID, in.man.ID)
	}
	ex := in.ex
	if !local.Is(string(man.Method)) {
		return man, nil, 0, fmt.Errorf("model %s (%s): %w", man.ID, man.Method, ErrCannotLearn)
	}
	l, err := loadLocal(m, ex)
	if err != nil {
		return man, nil, 0, err
	}
	ext, ok := l.Dens.(local.Extender)
	if !ok {
		return man, nil, 0, fmt.Errorf("model %s (%s): %w", man.ID, man.Method, ErrCannotLearn)
	}
	added := 0
	for i, p := range parts {
		if p.Empty() {
			return man, nil, 0, fmt.Errorf("confirmed-good part %d: empty image", i)
		}
		crop, err := in.Part(p)
		if err != nil {
			return man, nil, 0, fmt.Errorf("confirmed-good part %d: %w", i, err)
		}
		rows, h, w, _, err := l.Patches(ctx, ex, []gocv.Mat{crop})
		crop.Close()
		if err != nil {
			return man, nil, 0, fmt.Errorf("confirmed-good part %d: %w", i, err)
		}
		n, err := ext.Extend(ctx, rows[0], h*w)
		if err != nil {
			return man, nil, 0, fmt.Errorf("confirmed-good part %d: %w", i, err)
		}
		added += n
	}
	var lm LocalMethod
	if err := json.Unmarshal(man.MethodConfig, &lm); err != nil {
		return man, nil, 0, fmt.Errorf("model %s: %s configuration: %w", man.ID, man.Method, err)
	}
	lm.Density = l.Dens.Config()
	if man.MethodConfig, err = json.Marshal(lm); err != nil {
		return man, nil, 0, err
	}
	man.Training.Parent = m.Manifest.ID
	man.Training.ConfirmedGood += len(parts)
	// The density's tensors replace its old ones; every other tensor (the
	// position norm) is carried over, in the file's order.
	mine := map[string]model.Tensor{}
	for _, t := range l.Dens.Tensors() {
		mine[t.Name] = t
	}
	var names []string
	for _, ti := range m.Manifest.Tensors {
		names = append(names, ti.Name)
	}
	var rest []string
	for name := range m.Tensors {
		if !slices.Contains(names, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	var tensors []model.Tensor
	for _, name := range append(names, rest...) {
		if t, ok := mine[name]; ok {
			tensors = append(tensors, t)
			delete(mine, name)
			continue
		}
		t, err := m.Tensor(name)
		if err != nil {
			return man, nil, 0, err
		}
		tensors = append(tensors, t)
	}
	for _, t := range l.Dens.Tensors() {
		if _, left := mine[t.Name]; left {
			tensors = append(tensors, t)
		}
	}
	return man, tensors, added, nil
}
