package flow

import (
	"context"
	"fmt"
	"math"
)

// TrainConfig controls Train. Training stops at MaxEpochs, or earlier when
// the watched loss (validation loss if Val is given, else the epoch's mean
// training loss) has not improved on its best by more than MinDelta for
// Patience consecutive epochs.
type TrainConfig struct {
	Adam      AdamConfig // zero value means PaperAdam
	MaxEpochs int
	Batch     int
	Seed      int64 // batch order
	Patience  int   // 0 disables early stopping
	MinDelta  float64
	// Val, if ValN > 0, is a held-out batch whose loss is watched instead
	// of the training loss; the weights of its best epoch are restored.
	Val  []float32
	ValN int
	// Cond and ValCond are the conditions of the training and validation
	// rows (Config.Cond values each) for a conditional flow.
	Cond, ValCond []float32
	// Progress, if set, is called after every epoch with the watched loss.
	Progress func(epoch, total int, loss float64)
}

// StopReason says why Train returned.
type StopReason string

const (
	StopMaxEpochs StopReason = "max epochs"
	StopPlateau   StopReason = "loss plateau"
	StopCancelled StopReason = "cancelled"
)

// TrainStats summarises a run. Losses are per dimension (see Loss).
type TrainStats struct {
	Epochs     int
	Steps      int
	FirstLoss  float64   // watched loss after the first epoch
	FinalLoss  float64   // watched loss after the last epoch
	BestLoss   float64   // best watched loss
	BestEpoch  int       // 1-based epoch of BestLoss
	TrainLoss  []float64 // mean training loss per epoch
	ValLoss    []float64 // validation loss per epoch, when Val is given
	StopReason StopReason
}

func (c TrainConfig) validate(dim, cond int) error {
	switch {
	case c.MaxEpochs < 1:
		return fmt.Errorf("train: MaxEpochs %d, need at least 1", c.MaxEpochs)
	case c.Batch < 1:
		return fmt.Errorf("train: Batch %d, need at least 1", c.Batch)
	case c.Patience < 0:
		return fmt.Errorf("train: Patience %d, need >= 0", c.Patience)
	case c.MinDelta < 0 || math.IsNaN(c.MinDelta):
		return fmt.Errorf("train: MinDelta %v, need >= 0", c.MinDelta)
	case c.ValN < 0 || len(c.Val) != c.ValN*dim:
		return fmt.Errorf("train: %d validation values for ValN %d of dim %d", len(c.Val), c.ValN, dim)
	case len(c.ValCond) != c.ValN*cond:
		return fmt.Errorf("train: %d validation condition values for ValN %d of width %d", len(c.ValCond), c.ValN, cond)
	}
	if c.ValN > 0 {
		if i := firstNonFinite(c.Val); i >= 0 {
			return fmt.Errorf("train: validation value %d (row %d) is %v", i, i/dim, c.Val[i])
		}
	}
	return c.Adam.Validate()
}

func firstNonFinite(x []float32) int {
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return i
		}
	}
	return -1
}

// Train fits the flow to n feature vectors by minimising Loss with a fresh
// Adam over shuffled mini-batches (the last one may be smaller). The same seeds give
// the same weights bit for bit on the same machine and thread count. When ctx
// is cancelled Train returns ctx's error with the weights of the last step
// (or the best validation epoch) in place.
func (f *Flow) Train(ctx context.Context, x []float32, n int, cfg TrainConfig) (TrainStats, error) {
	var st TrainStats
	D := f.cfg.Dim
	if cfg.Adam == (AdamConfig{}) {
		cfg.Adam = PaperAdam
	}
	if n < 1 || len(x) != n*D {
		return st, fmt.Errorf("train: %d values for %d rows of dim %d", len(x), n, D)
	}
	if i := firstNonFinite(x); i >= 0 {
		return st, fmt.Errorf("train: value %d (row %d) is %v", i, i/D, x[i])
	}
	if C := f.cfg.Cond; len(cfg.Cond) != n*C {
		return st, fmt.Errorf("train: %d condition values for %d rows of width %d", len(cfg.Cond), n, C)
	}
	if i := firstNonFinite(cfg.Cond); i >= 0 {
		return st, fmt.Errorf("train: condition value %d is %v", i, cfg.Cond[i])
	}
	if err := cfg.validate(D, f.cfg.Cond); err != nil {
		return st, err
	}
	opt, err := NewAdam(f.params, cfg.Adam)
	if err != nil {
		return st, fmt.Errorf("train: %w", err)
	}
	useVal := cfg.ValN > 0
	var best [][]float32
	if useVal {
		best = make([][]float32, len(f.params))
		for i, p := range f.params {
			best[i] = append([]float32(nil), p.Data...)
		}
	}

	r := newRNG(cfg.Seed, 0x7a11)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	batch := make([]float32, 0, min(cfg.Batch, n)*D)
	C := f.cfg.Cond
	var cbatch []float32
	if C > 0 {
		cbatch = make([]float32, 0, min(cfg.Batch, n)*C)
	}
	st.BestLoss = math.Inf(1)
	sinceBest, ref := 0, math.Inf(1)
	st.StopReason = StopMaxEpochs
	for epoch := 1; epoch <= cfg.MaxEpochs; epoch++ {
		for i := n - 1; i > 0; i-- {
			j := r.intn(i + 1)
			order[i], order[j] = order[j], order[i]
		}
		var sum float64
		for lo := 0; lo < n; lo += cfg.Batch {
			if err := ctx.Err(); err != nil {
				st.StopReason = StopCancelled
				f.restore(best)
				return st, fmt.Errorf("train: stopped at epoch %d: %w", epoch, err)
			}
			hi := min(lo+cfg.Batch, n)
			batch = batch[:0]
			if cbatch != nil {
				cbatch = cbatch[:0]
			}
			for _, k := range order[lo:hi] {
				batch = append(batch, x[k*D:(k+1)*D]...)
				if C > 0 {
					cbatch = append(cbatch, cfg.Cond[k*C:(k+1)*C]...)
				}
			}
			f.ZeroGrad()
			loss := f.LossGradCond(batch, cbatch, hi-lo)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				f.restore(best)
				return st, fmt.Errorf("train: loss diverged to %v at epoch %d step %d: lower the learning rate or normalise the features", loss, epoch, st.Steps+1)
			}
			opt.Step()
			st.Steps++
			sum += loss * float64(hi-lo)
		}
		st.Epochs = epoch
		trainLoss := sum / float64(n)
		st.TrainLoss = append(st.TrainLoss, trainLoss)
		watched := trainLoss
		if useVal {
			watched = f.LossCond(cfg.Val, cfg.ValCond, cfg.ValN)
			st.ValLoss = append(st.ValLoss, watched)
		}
		if epoch == 1 {
			st.FirstLoss = watched
		}
		st.FinalLoss = watched
		if cfg.Progress != nil {
			cfg.Progress(epoch, cfg.MaxEpochs, watched)
		}
		if watched < st.BestLoss {
			st.BestLoss, st.BestEpoch = watched, epoch
			for i, p := range best {
				copy(p, f.params[i].Data)
			}
		}
		// As in Keras, only a gain of more than MinDelta over the reference
		// resets patience, so a slow drift does not keep training alive.
		if watched < ref-cfg.MinDelta {
			ref, sinceBest = watched, 0
		} else if sinceBest++; cfg.Patience > 0 && sinceBest >= cfg.Patience {
			st.StopReason = StopPlateau
			break
		}
	}
	f.restore(best)
	return st, nil
}

// restore copies saved weights back; nil means there is nothing to restore.
func (f *Flow) restore(saved [][]float32) {
	for i, p := range f.params {
		if saved != nil {
			copy(p.Data, saved[i])
		}
	}
}
