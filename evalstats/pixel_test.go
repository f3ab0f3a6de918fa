package evalstats

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// pixelMaps makes anomaly maps whose score offset and scale change from map to
// map, as real heatmaps do, so an adaptive range has to grow.
func pixelMaps(r *rand.Rand, maps, size int, drift bool) ([][]float32, [][]bool) {
	sc := make([][]float32, maps)
	mk := make([][]bool, maps)
	for m := range maps {
		off, scale := 0.0, 1.0
		if drift {
			off, scale = float64(m)*0.3-2, 0.2+float64(m)*0.15
		}
		sc[m] = make([]float32, size)
		mk[m] = make([]bool, size)
		for i := range size {
			def := r.IntN(10) == 0
			v := r.NormFloat64()
			if def {
				v += 1.2
			}
			mk[m][i] = def
			sc[m][i] = float32(off + scale*v)
		}
	}
	return sc, mk
}

func exactPixel(sc [][]float32, mk [][]bool) float64 {
	var s []float64
	var l []bool
	for m := range sc {
		for i, v := range sc[m] {
			s = append(s, float64(v))
			l = append(l, mk[m][i])
		}
	}
	a, err := AUROC(s, l)
	if err != nil {
		panic(err)
	}
	return a
}

func TestPixelAUROCMatchesExact(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	fixed := func() *PixelAUROC {
		a, err := NewPixelAUROC(-8, 12, 0)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		name  string
		acc   func() *PixelAUROC
		drift bool
	}{
		{"fixed range", fixed, false},
		{"fixed range, drifting maps", fixed, true},
		{"adaptive", func() *PixelAUROC { return NewAdaptivePixelAUROC(0) }, false},
		{"adaptive, drifting maps", func() *PixelAUROC { return NewAdaptivePixelAUROC(0) }, true},
		{"adaptive, coarse", func() *PixelAUROC { return NewAdaptivePixelAUROC(4096) }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc, mk := pixelMaps(r, 12, 256*256/4, tc.drift)
			a := tc.acc()
			for m := range sc {
				if err := a.Add(sc[m], mk[m]); err != nil {
					t.Fatal(err)
				}
			}
			got, err := a.AUROC()
			if err != nil {
				t.Fatal(err)
			}
			bound, _ := a.ErrorBound()
			want := exactPixel(sc, mk)
			diff := math.Abs(got - want)
			t.Logf("exact %.6f histogram %.6f diff %.2e bound %.2e", want, got, diff, bound)
			if diff >= 1e-3 {
				t.Errorf("|histogram - exact| = %.2e, want < 1e-3", diff)
			}
			if diff > bound+1e-12 {
				t.Errorf("diff %.2e exceeds the stated bound %.2e", diff, bound)
			}
			p, g := a.Counts()
			if total := p + g; total != uint64(12*256*256/4) {
				t.Errorf("counted %d pixels, want %d", total, 12*256*256/4)
			}
		})
	}
}

func TestPixelAUROCClampsOutOfRange(t *testing.T) {
	a, err := NewPixelAUROC(0, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Good pixels far below, defective far above: still perfectly separated.
	if err := a.Add([]float32{-1e30, -5, 7, 3e38}, []bool{false, false, true, true}); err != nil {
		t.Fatal(err)
	}
	got, err := a.AUROC()
	if err != nil || got != 1 {
		t.Errorf("AUROC = %v, %v; want 1", got, err)
	}
}

func TestPixelAUROCAdaptiveGrowsBothWays(t *testing.T) {
	a := NewAdaptivePixelAUROC(64)
	// A single value first: the degenerate start must widen later.
	steps := []struct {
		s []float32
		m []bool
	}{
		{[]float32{5, 5}, []bool{false, false}},
		{[]float32{100}, []bool{true}},
		{[]float32{-100}, []bool{false}},
		{[]float32{50, 4}, []bool{true, false}},
	}
	for _, st := range steps {
		if err := a.Add(st.s, st.m); err != nil {
			t.Fatal(err)
		}
	}
	// Defective {100, 50} above good {5, 5, -100, 4}: perfect separation.
	got, err := a.AUROC()
	if err != nil || got != 1 {
		t.Errorf("AUROC = %v, %v; want 1", got, err)
	}
}

func TestPixelAUROCErrors(t *testing.T) {
	if _, err := NewPixelAUROC(1, 1, 10); err == nil {
		t.Error("empty range: want error")
	}
	if _, err := NewPixelAUROC(math.NaN(), 1, 10); err == nil {
		t.Error("NaN range: want error")
	}
	a := NewAdaptivePixelAUROC(0)
	if err := a.Add([]float32{1, 2}, []bool{true}); err == nil {
		t.Error("length mismatch: want error")
	}
	if err := a.Add([]float32{1, float32(math.NaN())}, []bool{true, false}); err == nil {
		t.Error("NaN score: want error")
	}
	if _, err := a.AUROC(); err == nil {
		t.Error("nothing added: want error")
	}
	if err := a.Add([]float32{1, 2}, []bool{false, false}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AUROC(); err == nil {
		t.Error("no defective pixels: want error")
	}
}

func TestPixelAUROCConcurrentAdd(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	sc, mk := pixelMaps(r, 8, 4096, false)
	seq, _ := NewPixelAUROC(-6, 8, 0)
	par, _ := NewPixelAUROC(-6, 8, 0)
	var wg sync.WaitGroup
	for m := range sc {
		if err := seq.Add(sc[m], mk[m]); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := par.Add(sc[m], mk[m]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	a, _ := seq.AUROC()
	b, _ := par.AUROC()
	if a != b {
		t.Errorf("concurrent adds give %v, sequential %v", b, a)
	}
}

func BenchmarkPixelAUROCAdd(b *testing.B) {
	r := rand.New(rand.NewPCG(11, 12))
	sc, mk := pixelMaps(r, 1, 1<<20, false)
	a := NewAdaptivePixelAUROC(0)
	b.SetBytes(int64(len(sc[0]) * 4))
	b.ResetTimer()
	for b.Loop() {
		if err := a.Add(sc[0], mk[0]); err != nil {
			b.Fatal(err)
		}
	}
}
