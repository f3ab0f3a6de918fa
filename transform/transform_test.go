package transform

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"gocv.io/x/gocv"
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
	bad := []Config{{Mode: "spin"}, {Mode: Small}, {Mode: Small, MaxAngle: 200}, {Mode: None, Brightness: 1.5},
		{Mode: None, Shift: -0.1}, {Mode: None, Shift: 0.3}, {Mode: None, Shift: math.NaN()}}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (Config{Mode: Small, MaxAngle: 10, Contrast: 0.2}).Validate(); err != nil {
		t.Error(err)
	}
	if err := (Config{Mode: None, Flips: true, Shift: 0.05}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestApplyTrainingOnly: flips and shifts make training views differ from
// the part, and scoring (no rng) sees the part as it is.
func TestApplyTrainingOnly(t *testing.T) {
	img := gocv.NewMatWithSize(24, 32, gocv.MatTypeCV8UC3)
	defer img.Close()
	b, _ := img.DataPtrUint8()
	for i := range b {
		b[i] = uint8(i * 7 % 251)
	}
	same := func(m gocv.Mat) bool {
		d, _ := m.DataPtrUint8()
		return m.Rows() == 24 && m.Cols() == 32 && slices.Equal(d, b)
	}
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"flips", Config{Mode: None, Flips: true}},
		{"shift", Config{Mode: None, Shift: 0.1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := Apply(tc.c, img, 0, nil)
			if !same(plain) {
				t.Error("scoring view differs from the part")
			}
			plain.Close()
			rng := rand.New(rand.NewPCG(3, 4))
			changed := 0
			for range 8 {
				v := Apply(tc.c, img, 0, rng)
				if v.Rows() != 24 || v.Cols() != 32 {
					t.Fatalf("view %dx%d", v.Cols(), v.Rows())
				}
				if !same(v) {
					changed++
				}
				v.Close()
			}
			// Flips leave one view in four as it is; a shift of up to 3
			// px rounds to none rarely.
			if changed < 4 {
				t.Errorf("%d of 8 training views changed", changed)
			}
		})
	}
}

func TestUnnamed(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want bool
	}{
		{Config{Mode: Rotate}, false},
		{Config{Mode: Small, MaxAngle: 5}, false},
		{Config{Mode: None, Contrast: 0.1}, true},
		{Config{Mode: None, Flips: true}, true},
		{Config{Mode: Small, MaxAngle: 5, Shift: 0.02}, true},
	} {
		if got := tc.c.Unnamed(); got != tc.want {
			t.Errorf("%+v: Unnamed %v, want %v", tc.c, got, tc.want)
		}
		if a := tc.c.AnglesOnly(); a.Unnamed() || a.Mode != tc.c.Mode || a.MaxAngle != tc.c.MaxAngle {
			t.Errorf("%+v: AnglesOnly %+v", tc.c, a)
		}
	}
}
