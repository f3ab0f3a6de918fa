package pipeline

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/transform"
)

// Every method a model file can name has its bounds checked at load, the
// patch densities included (they register from here).
func TestEveryMethodHasBounds(t *testing.T) {
	for _, m := range append([]string{string(model.Flow), string(model.Gaussian)}, local.Names()...) {
		if !model.HasBounds(model.Method(m)) {
			t.Errorf("method %s has no bounds check", m)
		}
	}
}

func TestLocalMethodBounds(t *testing.T) {
	cases := []struct {
		name, cfg, want string
	}{
		{"defaults", `{"grid":{"neighbourhood":3,"dims":[0,0]}}`, ""},
		{"bank 2^40 rows", `{"grid":{"neighbourhood":3,"dims":[0]},"density":{"max_bank":1099511627776}}`, "out of bounds"},
		{"projection 1e9 wide", `{"grid":{"neighbourhood":3,"dims":[0]},"density":{"max_bank":10,"proj_dim":1000000000}}`, "out of bounds"},
		{"neighbourhood 1001", `{"grid":{"neighbourhood":1001,"dims":[0]}}`, "neighbourhood"},
		{"per-tap windows", `{"grid":{"neighbourhood":[3,1],"dims":[0,0]}}`, ""},
		{"three windows for two taps", `{"grid":{"neighbourhood":[3,1,1],"dims":[0,0]}}`, "neighbourhood windows"},
		{"window as text", `{"grid":{"neighbourhood":"3","dims":[0]}}`, "neighbourhood"},
		{"channels 1e6", `{"grid":{"neighbourhood":3,"dims":[1000000]}}`, "channel count"},
		{"top 7", `{"grid":{"neighbourhood":3,"dims":[0]},"top":7}`, "top share"},
		{"heat guide eps 2", `{"grid":{"neighbourhood":3,"dims":[0]},"heat_guide":2,"heat_guide_radius":4}`, "heat guide eps"},
		{"heat guide radius 1000", `{"grid":{"neighbourhood":3,"dims":[0]},"heat_guide":0.0001,"heat_guide_radius":1000}`, "heat guide radius"},
		{"heat guide radius -1", `{"grid":{"neighbourhood":3,"dims":[0]},"heat_guide_radius":-1}`, "heat guide radius"},
		{"not an object", `"big"`, "configuration"},
		{"cflow hidden 1e5", `{"grid":{"neighbourhood":3,"dims":[0]},"density":{"hidden":100000}}`, "cflow: hidden"},
	}
	bounds := func(raw string) error {
		var err error
		for _, name := range local.Names() {
			m := model.Manifest{Method: model.Method(name), MethodConfig: json.RawMessage(raw)}
			if e := validateMethodOnly(m); e != nil {
				err = e
			}
		}
		return err
	}
	for _, c := range cases {
		err := bounds(c.cfg)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v; want %q", c.name, err, c.want)
		}
	}
}

// validateMethodOnly runs Manifest.Validate on an otherwise valid manifest.
func validateMethodOnly(m model.Manifest) error {
	m.Features = features.Config{Taps: []string{"t"}, Scales: []int{224}, Mean: features.ImageNetMean, Std: features.ImageNetStd}
	m.Transforms = transform.Config{Mode: transform.None}
	return m.Validate(-1)
}

func TestGuideRadius(t *testing.T) {
	for _, tc := range []struct{ h, w, want int }{
		{56, 56, 4},   // 448 px square: one cell is 4 heat pixels
		{28, 28, 8},   // 224 px
		{56, 138, 3},  // a 1130x460 strip at 448 px
		{500, 500, 1}, // finer than the heat map: never 0
		{0, 7, 1},
	} {
		if got := GuideRadius(tc.h, tc.w); got != tc.want {
			t.Errorf("GuideRadius(%d, %d) = %d, want %d", tc.h, tc.w, got, tc.want)
		}
	}
}
