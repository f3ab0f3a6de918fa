package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/inspectd/inspectd/engine"
	"github.com/inspectd/inspectd/internal/testenv"
)

// BenchmarkBackbone reports milliseconds per image for the three DifferNet
// scales (448+224+112) with the default tap, batch 1 and batch 8.
func BenchmarkBackbone(b *testing.B) {
	model := testenv.RequireBackbone(b)
	for _, kind := range kinds {
		rt := open(b, kind, model, "stage7_s32")
		for _, batch := range []int{1, 8} {
			ins := []engine.Tensor{randomInput(batch, 448, 448, 1), randomInput(batch, 224, 224, 2), randomInput(batch, 112, 112, 3)}
			b.Run(fmt.Sprintf("%s/batch%d", kind, batch), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					for _, in := range ins {
						if _, err := rt.Run(context.Background(), in); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*batch), "ms/image")
			})
		}
	}
}
