package flow

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Benchmarks at the sizes the pipeline uses: MobileNetV2 features pooled at
// three scales (1280) or a smaller backbone (448), 8 blocks, batch 64.
var benchSizes = []struct{ dim, hidden, depth int }{
	{448, 512, 1}, {448, 1024, 2},
	{1280, 512, 1}, {1280, 512, 2}, {1280, 1024, 1}, {1280, 1024, 2},
}

const benchBatch = 64

func benchFlow(b *testing.B, dim, hidden, depth int) (*Flow, []float32) {
	f, err := New(Config{Dim: dim, Blocks: 8, Hidden: hidden, Depth: depth, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	perturb(b, f, 1, 0.05)
	return f, randBatch(rand.New(rand.NewPCG(1, 2)), benchBatch, dim, 1)
}

func BenchmarkTrainStep(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(fmt.Sprintf("D%d_H%d_L%d", s.dim, s.hidden, s.depth), func(b *testing.B) {
			f, x := benchFlow(b, s.dim, s.hidden, s.depth)
			opt, err := NewAdam(f.Params(), PaperAdam)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(f.NumParams())/1e6, "Mparams")
			for b.Loop() {
				f.ZeroGrad()
				f.LossGrad(x, benchBatch)
				opt.Step()
			}
		})
	}
}

func BenchmarkScoreGrad(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(fmt.Sprintf("D%d_H%d_L%d", s.dim, s.hidden, s.depth), func(b *testing.B) {
			f, x := benchFlow(b, s.dim, s.hidden, s.depth)
			for b.Loop() {
				f.ScoreGrad(x, benchBatch)
			}
		})
	}
}

func BenchmarkScore(b *testing.B) {
	for _, s := range benchSizes[:3] {
		b.Run(fmt.Sprintf("D%d_H%d_L%d", s.dim, s.hidden, s.depth), func(b *testing.B) {
			f, x := benchFlow(b, s.dim, s.hidden, s.depth)
			for b.Loop() {
				f.Score(x, benchBatch)
			}
		})
	}
}
