package evalstats

import "testing"

func TestAbove(t *testing.T) {
	good := []float64{1, 2, 3, 4}
	bad := []float64{2.5, 3.5, 5}
	cases := []struct {
		name       string
		t          float64
		k          int
		wantCount  int
		wantShare  float64
		wantOracle float64
	}{
		// strictly above: a score equal to the threshold passes
		{"threshold at a good score", 3, 1, 1, 0.25, 2.0 / 3},
		{"above every good part", 4.5, 0, 0, 0, 1.0 / 3},
		{"below every good part", 0, 3, 4, 1, 1},
		{"more rejects than good parts", 0, 9, 4, 1, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if n := CountAbove(good, c.t); n != c.wantCount {
				t.Errorf("CountAbove(%g) = %d, want %d", c.t, n, c.wantCount)
			}
			if s := ShareAbove(good, c.t); s != c.wantShare {
				t.Errorf("ShareAbove(%g) = %g, want %g", c.t, s, c.wantShare)
			}
			if o := OracleCatch(good, bad, c.k); o != c.wantOracle {
				t.Errorf("OracleCatch(k=%d) = %g, want %g", c.k, o, c.wantOracle)
			}
		})
	}
	if ShareAbove(nil, 1) != 0 || OracleCatch(nil, bad, 0) != 0 {
		t.Error("no scores should give 0")
	}
}
