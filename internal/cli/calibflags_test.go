package cli

import (
	"encoding/json"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/calibration"
	"github.com/inspectd/inspectd/evalstats"
	"github.com/inspectd/inspectd/features"
	"github.com/inspectd/inspectd/local"
	"github.com/inspectd/inspectd/model"
	"github.com/inspectd/inspectd/transform"
)

// Each patch density takes its own settings: patchcore's bank size is
// refused for cflow, and --seed reaches cflow's flow; cflow does not
// choose transformations by default (each candidate trains five flows).
func TestCalibFlagsPerDensity(t *testing.T) {
	tests := []struct {
		args    []string
		want    string // error substring, "" for none
		density func(raw json.RawMessage) bool
		choose  bool // transformations chosen among candidates
	}{
		{[]string{"--method", "cflow"}, "", func(raw json.RawMessage) bool { return raw == nil }, false},
		{[]string{"--method", "cflow", "--max-bank", "10"}, "patchcore setting", nil, false},
		{[]string{"--method", "cflow", "--seed", "7"}, "", func(raw json.RawMessage) bool {
			var c local.CFlowConfig
			return json.Unmarshal(raw, &c) == nil && c.Seed == 7 && c.Steps == local.DefaultCFlow.Steps
		}, false},
		{[]string{"--method", "patchcore", "--max-bank", "10"}, "", func(raw json.RawMessage) bool {
			return strings.Contains(string(raw), `"max_bank":10`)
		}, false},
		{[]string{"--method", "patchcore", "--mode", "auto"}, "", func(raw json.RawMessage) bool { return len(raw) > 0 }, true},
		{[]string{"--method", "patchcore", "--mode", "auto", "--mode", "none"}, "", func(raw json.RawMessage) bool { return len(raw) > 0 }, false},
		{[]string{"--method", "flow", "--mode", "auto"}, "patch method", nil, false},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cfg, err := parseCalibFlags(t, tc.args)
			if expectedError(t, err, tc.want) {
				return
			}
			if !tc.density(cfg.Local.Density) {
				t.Fatalf("density configuration %s", cfg.Local.Density)
			}
			if (len(cfg.Choose) > 0) != tc.choose {
				t.Fatalf("%d transformation candidates, want them: %v", len(cfg.Choose), tc.choose)
			}
		})
	}
}

// --flips and --shift act on training views: given alone they bring four;
// with --mode auto they are refused (the choice sets the transformations);
// out-of-range shifts are refused by validation.
func TestCalibFlagsFlipsShift(t *testing.T) {
	tests := []struct {
		args  []string
		want  string // error substring, "" for none
		flips bool
		shift float64
		views int
	}{
		{[]string{"--flips"}, "", true, 0, 4},
		{[]string{"--shift", "0.05", "--train-views", "2"}, "", false, 0.05, 2},
		{[]string{"--method", "flow", "--flips"}, "", true, 0, calibration.Defaults().TrainViews},
		{[]string{"--shift", "0"}, "", false, 0, 1}, // nothing to vary: no extra views
		{[]string{"--mode", "auto", "--flips"}, "--mode auto", false, 0, 0},
		{[]string{"--shift", "0.5"}, "shift", false, 0, 0},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cfg, ok := validCalibFlags(t, tc.args, tc.want)
			if !ok {
				return
			}
			if cfg.Transforms.Flips != tc.flips || cfg.Transforms.Shift != tc.shift || cfg.TrainViews != tc.views {
				t.Errorf("flips %v, shift %v, %d train views; want %v, %v, %d", cfg.Transforms.Flips, cfg.Transforms.Shift, cfg.TrainViews, tc.flips, tc.shift, tc.views)
			}
		})
	}
}

// Each transformation flag replaces its own part of the method's
// transformations (--jitter alone does not bring the flow's rotations to a
// patch method); a patch method, which scores each part as it is, gets four
// training views when they vary something and one when they vary nothing,
// unless --train-views is given.
func TestCalibFlagsViews(t *testing.T) {
	flowViews := calibration.Defaults().TrainViews
	tests := []struct {
		args   []string
		want   string // error substring, "" for none
		mode   string
		angle  float64
		jitter float64
		views  int
	}{
		{nil, "", "none", 0, 0, 1},
		{[]string{"--jitter", "0.2"}, "", "none", 0, 0.2, 4},
		{[]string{"--jitter", "0.2", "--train-views", "2"}, "", "none", 0, 0.2, 2},
		{[]string{"--mode", "small"}, "", "small", 10, 0, 4},
		{[]string{"--mode", "small", "--max-angle", "5", "--jitter", "0.1"}, "", "small", 5, 0.1, 4},
		{[]string{"--mode", "rotate"}, "", "rotate", 0, 0, 4},
		{[]string{"--mode", "none"}, "", "none", 0, 0, 1},
		{[]string{"--train-views", "3"}, "", "none", 0, 0, 3},
		{[]string{"--max-angle", "5"}, "--mode small", "", 0, 0, 0},
		{[]string{"--method", "padim", "--jitter", "0.2"}, "", "none", 0, 0.2, 4},
		{[]string{"--method", "flow"}, "", "small", 10, 0, flowViews},
		{[]string{"--method", "flow", "--jitter", "0.2"}, "", "small", 10, 0.2, flowViews},
		{[]string{"--method", "flow", "--max-angle", "5"}, "", "small", 5, 0, flowViews},
		{[]string{"--method", "flow", "--mode", "none"}, "", "none", 0, 0, flowViews},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cfg, ok := validCalibFlags(t, tc.args, tc.want)
			if !ok {
				return
			}
			tr := cfg.Transforms
			if string(tr.Mode) != tc.mode || tr.MaxAngle != tc.angle || tr.Brightness != tc.jitter || tr.Contrast != tc.jitter || tr.Saturation != tc.jitter {
				t.Errorf("transforms %+v, want mode %s, angle %g, jitter %g", tr, tc.mode, tc.angle, tc.jitter)
			}
			if cfg.TrainViews != tc.views {
				t.Errorf("%d train views, want %d", cfg.TrainViews, tc.views)
			}
		})
	}
}

// parseCalibFlags parses args as calibrate's flags and returns the Config
// they make (not yet validated).
func parseCalibFlags(t *testing.T, args []string) (calibration.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfgFn := calibFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cfgFn()
}

// validCalibFlags parses and validates args; ok is false when the case
// ends there (the error want asks for came, and nothing is left to check).
func validCalibFlags(t *testing.T, args []string, want string) (cfg calibration.Config, ok bool) {
	t.Helper()
	cfg, err := parseCalibFlags(t, args)
	if err == nil {
		err = cfg.Validate()
	}
	return cfg, !expectedError(t, err, want)
}

// expectedError fails the test unless err is what want asks ("" for none)
// and says whether an error was expected (the case ends there).
func expectedError(t *testing.T, err error, want string) bool {
	t.Helper()
	if want != "" {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err %v, want %q", err, want)
		}
		return true
	}
	if err != nil {
		t.Fatal(err)
	}
	return false
}

// --neighbourhood takes one window for every tap or one per tap; a method
// keeps its own windows unless the flag is given; validation names a
// window that does not fit the taps.
func TestCalibFlagsNeighbourhood(t *testing.T) {
	tests := []struct {
		args []string
		want string // error substring, "" for none
		win  []int
	}{
		{nil, "", []int{3, 1}}, // patchcore's default
		{[]string{"--method", "padim"}, "", []int{3}},
		{[]string{"--neighbourhood", "5"}, "", []int{5}},
		{[]string{"--neighbourhood", "1,3"}, "", []int{1, 3}},
		{[]string{"--neighbourhood", "3,x"}, "--neighbourhood", nil},
		{[]string{"--neighbourhood", "3,1,1"}, "3 neighbourhood windows for 2 taps", nil},
		{[]string{"--neighbourhood", "3,2"}, "must be odd", nil},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cfg, ok := validCalibFlags(t, tc.args, tc.want)
			if !ok {
				return
			}
			if !slices.Equal(cfg.Local.Grid.Neighbourhood, tc.win) {
				t.Errorf("windows %v, want %v", cfg.Local.Grid.Neighbourhood, tc.win)
			}
		})
	}
}

// calibrate says in words what the training views vary.
func TestDescribeViews(t *testing.T) {
	for _, tc := range []struct {
		tr   transform.Config
		want string
	}{
		{transform.Config{Mode: transform.None}, "unchanged copies"},
		{transform.Config{Mode: transform.Small, MaxAngle: 10}, "turned by up to 10 degrees"},
		{transform.Config{Mode: transform.Rotate, Flips: true}, "turned by any angle, mirrored"},
		{transform.Config{Mode: transform.None, Brightness: 0.2, Contrast: 0.2, Saturation: 0.1, Shift: 0.04},
			"brightness, contrast and saturation changed by up to 20/20/10%, moved by up to 4% of its size"},
	} {
		if got := describeViews(tc.tr); got != tc.want {
			t.Errorf("describeViews(%+v) = %q, want %q", tc.tr, got, tc.want)
		}
	}
}

func TestRefineNote(t *testing.T) {
	for _, tc := range []struct{ method, want string }{
		{evalstats.ScoresLeaveOneOut + "gaussian+empirical", "raises this threshold, never lowers it"},
		{evalstats.ScoresKFold + "gaussian", "keeps this threshold as calibrated"},
		{"", "keeps this threshold as calibrated"},
	} {
		if got := refineNote(tc.method); !strings.Contains(got, tc.want) {
			t.Errorf("refineNote(%q) = %q; want it to say %q", tc.method, got, tc.want)
		}
	}
}

func TestManyPartsNote(t *testing.T) {
	for _, tc := range []struct {
		method model.Method
		images int
		scales []int
		note   bool
	}{
		{"patchcore", 16, []int{448}, false},
		{"patchcore", 644, []int{448}, true},
		{"padim", 412, []int{448}, true},
		{"patchcore", 644, []int{256}, false},
		{"flow", 644, []int{448, 224, 112}, false},
		{"patchcore", 644, nil, false},
	} {
		m := &model.Manifest{Method: tc.method, Features: features.Config{Scales: tc.scales}}
		m.Training.Images = tc.images
		got := manyPartsNote(m)
		if (got != "") != tc.note || (tc.note && !strings.Contains(got, "--scales 256")) {
			t.Errorf("%s on %d parts at %v: note %q", tc.method, tc.images, tc.scales, got)
		}
	}
}
