package operating

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/inspectd/inspectd/evalstats"
)

// line makes a synthetic test set: good scores log-normal (median goodMedian,
// log spread sigma), defects the same shifted up by shift (in log units) with
// spread 1.5 sigma, frac of the parts defective.
func line(seed uint64, n int, frac, goodMedian, sigma, shift float64) []Part {
	rng := rand.New(rand.NewPCG(seed, 1))
	parts := make([]Part, n)
	nd := int(math.Round(frac * float64(n)))
	for i := range parts {
		if i < nd {
			parts[i] = Part{Score: goodMedian * math.Exp(shift+1.5*sigma*rng.NormFloat64()), Defect: true}
		} else {
			parts[i] = Part{Score: goodMedian * math.Exp(sigma*rng.NormFloat64())}
		}
	}
	return parts
}

// calibrationGood mimics calibration's out-of-sample scores: 16 good parts
// scored by fold models, which run higher (bias, log units) than the final
// model does on new good parts, with the same spread in log units (ELPV at
// 448 px, over the median: the second highest of the 16 leave-one-out
// scores 1.85, the 90th percentile of new good cells 1.94 on mono; 1.43 and
// 1.45 on poly).
func calibrationGood(seed uint64, goodMedian, sigma, bias float64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 2))
	g := make([]float64, 16)
	for i := range g {
		g[i] = goodMedian * math.Exp(bias+sigma*rng.NormFloat64())
	}
	return g
}

func TestSimulateOnSyntheticLines(t *testing.T) {
	for _, tc := range []struct {
		name        string
		frac, shift float64
		bias        float64
		minf        float64
	}{
		{"5% defects, fold bias", 0.05, 1.5, 0.5, 0},
		{"10% defects, fold bias", 0.10, 1.5, 0.5, 0},
		{"20% defects, fold bias", 0.20, 1.5, 0.5, 0},
		{"30% defects, fold bias", 0.30, 1.5, 0.5, 0},
		{"10% defects, no bias", 0.10, 1.5, 0, 0},
		{"10% defects, close defects", 0.10, 0.8, 0.5, 0},
		{"10% defects, fold bias, bounds [0.5, 2]", 0.10, 1.5, 0.5, 0.5},
		{"30% defects, fold bias, bounds [0.5, 2]", 0.30, 1.5, 0.5, 0.5},
		// Leave-one-out scores of the final model: refinement only raises.
		{"10% defects, leave-one-out, raised only", 0.10, 1.5, 0, 1},
		{"10% defects, a batch scoring higher than calibration, raised only", 0.10, 1.5, -0.3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const runs = 20
			var frr100, catch100, oracle100, static100, frrAll, catchAll, oracleAll float64
			for s := uint64(1); s <= runs; s++ {
				good := calibrationGood(s, 5, 0.4, tc.bias)
				cal, err := evalstats.ThresholdForFRR(good, 0.01, evalstats.MethodLogNormal)
				if err != nil {
					t.Fatal(err)
				}
				parts := line(s, 600, tc.frac, 5, 0.4, tc.shift)
				sim, err := Simulate(parts, cal, good, int64(s), Config{Refine: true, MinFactor: tc.minf})
				if err != nil {
					t.Fatal(err)
				}
				if len(sim.Checkpoints) != 3 || sim.Checkpoints[0].Parts != 50 || sim.Checkpoints[1].Parts != 100 || sim.Checkpoints[2].Parts != 600 {
					t.Fatalf("checkpoints %+v", sim.Checkpoints)
				}
				c100, all := sim.Checkpoints[1], sim.Checkpoints[2]
				if c100.After.Parts != 500 || all.After.Parts != 0 || all.Cumulative.Parts != 600 {
					t.Fatalf("checkpoint sizes: %+v / %+v", c100.After, all.After)
				}
				lo := tc.minf
				if lo == 0 {
					lo = DefaultMinFactor
				}
				for _, c := range sim.Changes {
					if c.To < lo*cal*(1-1e-12) || c.To > DefaultMaxFactor*cal*(1+1e-12) {
						t.Fatalf("threshold %v outside [%v, %v] x %v", c.To, lo, DefaultMaxFactor, cal)
					}
				}
				// "After 100 parts": the decisions made from part 101 on.
				frr100 += c100.After.FRR / runs
				catch100 += c100.After.Catch / runs
				oracle100 += c100.After.OracleCatch / runs
				static100 += c100.Static.Catch / runs
				frrAll += all.Cumulative.FRR / runs
				catchAll += all.Cumulative.Catch / runs
				oracleAll += all.Cumulative.OracleCatch / runs
			}
			t.Logf("after 100: FRR %.2f%% catch %.1f%% oracle %.1f%% (calibrated, first 100: catch %.1f%%); all: FRR %.2f%% catch %.1f%% oracle %.1f%%",
				100*frr100, 100*catch100, 100*oracle100, 100*static100, 100*frrAll, 100*catchAll, 100*oracleAll)
			if tc.frac <= 0.2 {
				if frr100 > 0.02 {
					t.Errorf("false-reject rate after 100 parts %.3f > 2%%", frr100)
				}
				if oracle100-catch100 > 0.10 {
					t.Errorf("catch after 100 parts %.3f more than 10 points under the oracle's %.3f", catch100, oracle100)
				}
			}
		})
	}
}

func TestSimulateDeterministicAndStatic(t *testing.T) {
	parts := line(7, 300, 0.1, 5, 0.4, 1.5)
	good := calibrationGood(7, 5, 0.4, 0.5)
	a, err := Simulate(parts, 20, good, 3, Config{Refine: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Simulate(parts, 20, good, 3, Config{Refine: true})
	if a.Final != b.Final || len(a.Changes) != len(b.Changes) || a.Checkpoints[2].Cumulative != b.Checkpoints[2].Cumulative {
		t.Errorf("same seed, different runs: %+v vs %+v", a.Checkpoints[2], b.Checkpoints[2])
	}
	off, _ := Simulate(parts, 20, good, 3, Config{Refine: false})
	if len(off.Changes) != 0 || off.Final != 20 {
		t.Errorf("refinement off moved the threshold: %+v", off.Changes)
	}
	for i, c := range off.Checkpoints {
		if c.Cumulative != c.Static || c.After != c.StaticAfter {
			t.Errorf("refinement off: %+v / %+v differ from the static %+v / %+v", c.Cumulative, c.After, c.Static, c.StaticAfter)
		}
		// The static figures are the same parts whatever the refinement did.
		if on := a.Checkpoints[i]; on.Static != c.Static || on.StaticAfter != c.StaticAfter {
			t.Errorf("checkpoint %d: static %+v / %+v with refinement on, %+v / %+v off", i, on.Static, on.StaticAfter, c.Static, c.StaticAfter)
		}
	}
	small, _ := Simulate(parts[:30], 20, good, 3, Config{Refine: true})
	if len(small.Checkpoints) != 1 || small.Checkpoints[0].Parts != 30 {
		t.Errorf("30 parts: checkpoints %+v", small.Checkpoints)
	}
}

func TestSimulateRefusesBadInput(t *testing.T) {
	good := []float64{1, 2, 3}
	for _, tc := range []struct {
		name  string
		parts []Part
		cal   float64
		want  string
	}{
		{"no parts", nil, 1, "no parts"},
		{"NaN score", []Part{{Score: math.NaN()}}, 1, "score NaN"},
		{"zero threshold", []Part{{Score: 1}}, 0, "start threshold"},
		{"infinite threshold", []Part{{Score: 1}}, math.Inf(1), "start threshold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Simulate(tc.parts, tc.cal, good, 1, Config{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRates(t *testing.T) {
	parts := []Part{{1, false}, {2, false}, {3, false}, {4, false}, {2.5, true}, {5, true}}
	for _, tc := range []struct {
		name     string
		rejected []bool
		want     Rates
	}{
		{"none rejected", []bool{false, false, false, false, false, false},
			Rates{Parts: 6, Good: 4, Defects: 2, OracleThreshold: 4, OracleCatch: 0.5}},
		{"one false reject", []bool{false, false, false, true, false, true},
			Rates{Parts: 6, Good: 4, Defects: 2, FalseRejects: 1, Caught: 1, FRR: 0.25, Catch: 0.5, OracleThreshold: 3, OracleCatch: 0.5}},
		{"two false rejects", []bool{false, false, true, true, true, true},
			Rates{Parts: 6, Good: 4, Defects: 2, FalseRejects: 2, Caught: 2, FRR: 0.5, Catch: 1, OracleThreshold: 2, OracleCatch: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rates(parts, tc.rejected); got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// Leave-one-out thresholds (the patch methods') are only raised on the line;
// fold-model thresholds may fall to DefaultMinFactor.
func TestMinFactorFor(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   float64
	}{
		{"loo-gaussian+empirical", 1},
		{"loo-lognormal", 1},
		{"lognormal", DefaultMinFactor},
		{"auto", DefaultMinFactor},
		{"", DefaultMinFactor},
	} {
		if got := MinFactorFor(tc.method); got != tc.want {
			t.Errorf("MinFactorFor(%q) = %v, want %v", tc.method, got, tc.want)
		}
	}
}

// A batch of good parts the 16 calibration parts did not show (a module
// imaged apart, scoring like defects to the line's body): refinement alone
// cannot tell it from defects, a person checking each reject can.
func TestSimulateReviewed(t *testing.T) {
	const runs = 10
	var plain, reviewed float64
	for s := uint64(1); s <= runs; s++ {
		good := calibrationGood(s, 5, 0.4, 0)
		cal, err := evalstats.ThresholdForFRR(good, 0.01, evalstats.MethodGaussian)
		if err != nil {
			t.Fatal(err)
		}
		parts := line(s, 600, 0.05, 5, 0.4, 1.5)
		rng := rand.New(rand.NewPCG(s, 3))
		for i := range parts {
			if !parts[i].Defect && rng.Float64() < 0.15 {
				parts[i].Score *= math.Exp(1.2)
			}
		}
		cfg := Config{Refine: true, MinFactor: 1}
		a, err := Simulate(parts, cal, good, int64(s), cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, err := SimulateReviewed(parts, cal, good, int64(s), cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range b.Changes {
			if c.To < cal*(1-1e-12) {
				t.Fatalf("reviewed line lowered the threshold to %v (start %v)", c.To, cal)
			}
		}
		if a.Checkpoints[1].StaticAfter != b.Checkpoints[1].StaticAfter {
			t.Fatalf("the same parts differ at the calibrated threshold: %+v vs %+v", a.Checkpoints[1].StaticAfter, b.Checkpoints[1].StaticAfter)
		}
		plain += a.Checkpoints[1].After.FRR / runs
		reviewed += b.Checkpoints[1].After.FRR / runs
	}
	t.Logf("false rejects after 100 parts: %.2f%% refined, %.2f%% refined and reviewed", 100*plain, 100*reviewed)
	if plain < 0.05 {
		t.Fatalf("the unseen batch rejects only %.2f%% without review: the test shows nothing", 100*plain)
	}
	// Not down to the target: the threshold may rise to twice its start
	// (MaxFactor), and this batch scores 3.3 times the others.
	if reviewed > plain/2 {
		t.Errorf("reviewed line rejects %.2f%% of good parts after 100 (%.2f%% without review); want at most half", 100*reviewed, 100*plain)
	}
}

// The reject-rate check in a simulated line: quiet where the threshold
// holds, on where a share of good parts the calibration never saw scores
// above it.
func TestSimulateRejectsHigh(t *testing.T) {
	good := calibrationGood(9, 5, 0.3, 0)
	parts := line(9, 400, 0.05, 5, 0.3, 1.5)
	thr := 5 * math.Exp(2.33*0.3)
	quiet, err := Simulate(parts, thr, good, 1, Config{Refine: true, MinFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	if quiet.RejectsHigh != 0 || quiet.RejectsHighParts != 0 {
		t.Errorf("quiet line: check on after part %d, for %d parts", quiet.RejectsHigh, quiet.RejectsHighParts)
	}
	// A batch of good parts unlike the calibration's: 15% of the good ones
	// score ten times higher.
	batch := append([]Part(nil), parts...)
	for i := range batch {
		if !batch[i].Defect && i%7 == 0 {
			batch[i].Score *= 10
		}
	}
	hi, err := Simulate(batch, thr, good, 1, Config{Refine: true, MinFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	if hi.RejectsHigh < minRejectWindow || hi.RejectsHigh > 250 || hi.RejectsHighParts == 0 ||
		hi.RejectsHighParts > len(batch)-hi.RejectsHigh+1 {
		t.Errorf("unseen good parts: check on after part %d, for %d parts of %d", hi.RejectsHigh, hi.RejectsHighParts, len(batch))
	}
}
