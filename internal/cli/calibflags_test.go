package cli

import (
	"encoding/json"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/local"
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
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cfgFn := calibFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			cfg, err := cfgFn()
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
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
