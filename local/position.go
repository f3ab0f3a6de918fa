package local

import "context"

// Position is where a patch sits: its cell's centre as a share of the
// grid's height and width, so that grids of different sizes (aspect-true
// inputs of odd-sized crops) share one frame.
type Position struct{ Y, X float32 }

// GridPositions are the positions of an h x w grid's rows in raster order,
// the order Grid returns them.
func GridPositions(h, w int) []Position {
	out := make([]Position, 0, h*w)
	for y := range h {
		for x := range w {
			out = append(out, Position{Y: (float32(y) + 0.5) / float32(h), X: (float32(x) + 0.5) / float32(w)})
		}
	}
	return out
}

// Positional is a density that conditions on where a patch is (a
// conditional flow): what is normal at a cell's corner is not normal in its
// middle. Callers that know the grid use FitAt and ScoreAt, with at[i] the
// position of row i; the plain Fit and Score of such a density refuse rows
// without positions.
type Positional interface {
	Density
	FitAt(ctx context.Context, x []float32, n, dim int, owner []int32, at []Position) error
	ScoreAt(ctx context.Context, x []float32, n int, at []Position, exclude int32) ([]float32, error)
}
