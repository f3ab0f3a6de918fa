// Package plots draws the evaluation and calibration figures (ROC curves,
// score histograms with the decision threshold) as PNG files.
package plots

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/internal/durable"
)

// Default image size in pixels.
const (
	DefaultWidth  = 800
	DefaultHeight = 600
)

const dpi = 96

// palette starts with blue for the first group (by convention the good
// parts) and keeps red for the threshold, so defects never look "good".
var palette = []color.NRGBA{
	{R: 31, G: 119, B: 180, A: 255},  // blue
	{R: 255, G: 127, B: 14, A: 255},  // orange
	{R: 148, G: 103, B: 189, A: 255}, // purple
	{R: 140, G: 86, B: 75, A: 255},   // brown
	{R: 23, G: 190, B: 207, A: 255},  // teal
	{R: 188, G: 189, B: 34, A: 255},  // olive
	{R: 227, G: 119, B: 194, A: 255}, // pink
	{R: 44, G: 160, B: 44, A: 255},   // green
}

func paletteColor(i int) color.NRGBA { return palette[i%len(palette)] }

// Option changes how a figure is drawn.
type Option func(*options)

type options struct {
	width, height int
	bins          int
}

// WithSize sets the image size in pixels.
func WithSize(width, height int) Option {
	return func(o *options) { o.width, o.height = width, height }
}

// WithBins sets the number of histogram bins (default: from the data).
func WithBins(n int) Option {
	return func(o *options) { o.bins = n }
}

func collect(opts []Option) (options, error) {
	o := options{width: DefaultWidth, height: DefaultHeight}
	for _, f := range opts {
		f(&o)
	}
	if o.width < 64 || o.height < 64 || o.width > 10000 || o.height > 10000 {
		return o, fmt.Errorf("plots: size %dx%d outside 64..10000 pixels", o.width, o.height)
	}
	if o.bins < 0 {
		return o, fmt.Errorf("plots: %d histogram bins", o.bins)
	}
	return o, nil
}

// Curve is one named ROC curve.
type Curve struct {
	Name   string
	Points []evalstats.Point
}

// ROCPNG draws ROC curves, each labelled with its name and area, plus the
// chance diagonal, and writes them to path as a PNG.
func ROCPNG(path string, curves []Curve, title string, opts ...Option) error {
	o, err := collect(opts)
	if err != nil {
		return err
	}
	if len(curves) == 0 {
		return errors.New("plots: ROC: no curves")
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "false positive rate (good parts rejected)"
	p.Y.Label.Text = "true positive rate (defects caught)"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.Add(plotter.NewGrid())
	p.Legend.Top = false
	p.Legend.Left = false

	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return fmt.Errorf("plots: ROC diagonal: %w", err)
	}
	diag.Color = color.Gray{Y: 160}
	diag.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	p.Add(diag)

	for i, c := range curves {
		if len(c.Points) < 2 {
			return fmt.Errorf("plots: ROC curve %q has %d points, need at least 2", c.Name, len(c.Points))
		}
		xys := make(plotter.XYs, len(c.Points))
		var area float64
		for j, pt := range c.Points {
			if !(pt.FPR >= 0 && pt.FPR <= 1 && pt.TPR >= 0 && pt.TPR <= 1) {
				return fmt.Errorf("plots: ROC curve %q point %d (%v, %v) outside [0,1]", c.Name, j, pt.FPR, pt.TPR)
			}
			xys[j] = plotter.XY{X: pt.FPR, Y: pt.TPR}
			if j > 0 {
				a := c.Points[j-1]
				area += (pt.FPR - a.FPR) * (pt.TPR + a.TPR) / 2
			}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plots: ROC curve %q: %w", c.Name, err)
		}
		l.Color = paletteColor(i)
		l.Width = vg.Points(2)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (AUROC %.3f)", c.Name, area), l)
	}
	return save(p, path, o)
}

// Group is one class of scores in a histogram.
type Group struct {
	Name   string
	Scores []float64
}

// HistogramPNG draws one histogram per group over shared bins, each scaled to
// fractions of its own group so a class of 16 parts and one of 200 compare
// directly, with threshold as a vertical line (NaN for none).
func HistogramPNG(path string, groups []Group, threshold float64, title string, opts ...Option) error {
	o, err := collect(opts)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return errors.New("plots: histogram: no groups")
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	most := 0
	for _, g := range groups {
		if len(g.Scores) == 0 {
			return fmt.Errorf("plots: histogram: group %q has no scores", g.Name)
		}
		for i, v := range g.Scores {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("plots: histogram: group %q score %d is %v", g.Name, i, v)
			}
			lo, hi = min(lo, v), max(hi, v)
		}
		most = max(most, len(g.Scores))
	}
	if math.IsInf(threshold, 0) {
		return fmt.Errorf("plots: histogram: threshold %v (use NaN for none)", threshold)
	}
	hasThreshold := !math.IsNaN(threshold)
	if hasThreshold {
		lo, hi = min(lo, threshold), max(hi, threshold)
	}
	if hi == lo { // one distinct value: give the bars some width
		pad := max(math.Abs(lo)*0.05, 0.5)
		lo, hi = lo-pad, hi+pad
	}
	bins := o.bins
	if bins == 0 {
		// Square-root rule: few bins for 16 parts, finer for big test sets.
		bins = max(8, min(60, int(math.Ceil(math.Sqrt(float64(most))))*2))
	}
	width := (hi - lo) / float64(bins)

	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "anomaly score"
	p.Y.Label.Text = "fraction of group"
	p.Add(plotter.NewGrid())
	p.Legend.Top = true

	ymax := 0.0
	for i, g := range groups {
		hb := make([]plotter.HistogramBin, bins)
		for b := range hb {
			hb[b].Min = lo + float64(b)*width
			hb[b].Max = lo + float64(b+1)*width
		}
		w := 1 / float64(len(g.Scores))
		for _, v := range g.Scores {
			b := min(int((v-lo)/width), bins-1)
			hb[b].Weight += w
		}
		for _, b := range hb {
			ymax = max(ymax, b.Weight)
		}
		c := paletteColor(i)
		fill := c
		fill.A = 110 // translucent so overlapping classes stay visible
		h := &plotter.Histogram{Bins: hb, Width: width, FillColor: fill, LineStyle: draw.LineStyle{Color: c, Width: vg.Points(1)}}
		p.Add(h)
		p.Legend.Add(fmt.Sprintf("%s (n=%d)", g.Name, len(g.Scores)), h)
	}
	// Headroom keeps the legend off the tallest bars.
	p.Y.Min, p.Y.Max = 0, ymax*1.25
	if hasThreshold {
		l, err := plotter.NewLine(plotter.XYs{{X: threshold, Y: 0}, {X: threshold, Y: ymax * 1.25}})
		if err != nil {
			return fmt.Errorf("plots: threshold line: %w", err)
		}
		l.Color = color.RGBA{R: 214, G: 39, B: 40, A: 255}
		l.Width = vg.Points(2)
		l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("threshold %.4g", threshold), l)
	}
	return save(p, path, o)
}

// save renders p at the requested pixel size and replaces path atomically.
func save(p *plot.Plot, path string, o options) error {
	px := func(n int) vg.Length { return vg.Length(n) * vg.Inch / dpi }
	c := vgimg.NewWith(vgimg.UseWH(px(o.width), px(o.height)), vgimg.UseDPI(dpi))
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return fmt.Errorf("plots: encoding %s: %w", path, err)
	}
	return writeFileAtomic(path, buf.Bytes())
}

func writeFileAtomic(path string, data []byte) error {
	if err := durable.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	return nil
}
