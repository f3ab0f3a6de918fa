package transform

import (
	"math/rand/v2"
	"testing"
)

func TestTestAngles(t *testing.T) {
	cases := []struct {
		cfg  Config
		t    int
		want []float64
	}{
		{Config{Mode: None}, 8, []float64{0}},
		{Config{Mode: Rotate}, 4, []float64{0, 90, 180, 270}},
		{Config{Mode: Rotate}, 1, []float64{0}},
		{Config{Mode: Small, MaxAngle: 10}, 3, []float64{-10, 0, 10}},
		{Config{Mode: Small, MaxAngle: 10}, 1, []float64{0}},
	}
	for _, c := range cases {
		got := c.cfg.TestAngles(c.t)
		if len(got) != len(c.want) {
			t.Fatalf("%+v T=%d: %v, want %v", c.cfg, c.t, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%+v T=%d: %v, want %v", c.cfg, c.t, got, c.want)
			}
		}
	}
}

func TestTrainAngleRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		cfg Config
		max float64
	}{{Config{Mode: None}, 0}, {Config{Mode: Small, MaxAngle: 12}, 12}, {Config{Mode: Rotate}, 180}} {
		var seenNeg, seenPos bool
		for i := 0; i < 1000; i++ {
			a := c.cfg.TrainAngle(rng)
			if a < -c.max || a > c.max {
				t.Fatalf("%s: angle %g outside +-%g", c.cfg.Mode, a, c.max)
			}
			seenNeg = seenNeg || a < -c.max/2
			seenPos = seenPos || a > c.max/2
		}
		if c.max > 0 && !(seenNeg && seenPos) {
			t.Errorf("%s: draws do not cover the range", c.cfg.Mode)
		}
	}
}

func TestValidate(t *testing.T) {
	bad := []Config{{Mode: "spin"}, {Mode: Small}, {Mode: Small, MaxAngle: 200}, {Mode: None, Brightness: 1.5}}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (Config{Mode: Small, MaxAngle: 10, Contrast: 0.2}).Validate(); err != nil {
		t.Error(err)
	}
}
