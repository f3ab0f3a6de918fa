package capture

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/inspectd/inspectd/imageops"
	"github.com/inspectd/inspectd/internal/durable"
)

// Subfolders of a hot folder. Acknowledged files go to DoneDir and files
// that cannot be decoded to FailedDir, each with a NAME.reason.txt beside it.
// Moving (not journaling) keeps the state visible to operators and makes a
// restart trivially correct: whatever is still in the folder is not done.
const (
	DoneDir   = "done"
	FailedDir = "failed"
)

// incompleteGrace: a file whose bytes end mid-image (or that is still
// empty) is assumed still being written for this many settle times, then
// declared broken.
const incompleteGrace = 10

// markerSuffix names the marker written beside a file before it is decoded
// (".NAME.inspecting", hidden) and removed once the file is moved to done/ or
// failed/, or left for a retry at a clean shutdown. A marker found at start
// means the previous process died with that file in hand, perhaps because of
// it (an image that exhausts memory would otherwise kill every restart): the
// file is moved to failed/ with that reason instead of being tried again.
const markerSuffix = ".inspecting"

// crashReason is the failed/ reason of a file found with a marker at start.
//
//lint:ignore ST1012 a reason written beside the file in failed/, never compared with errors.Is
var crashReason = errors.New("inspectd stopped while decoding or inspecting this file (marker left by the previous run); " +
	"not retried in case it caused the crash: move it back into the folder to retry")

// hotFolder delivers image files dropped into a folder, each exactly once
// per acknowledgement: oldest first, never a file still being written.
type hotFolder struct {
	lock    *sourceLock // the folder's flock, released by Close
	cfg     Config
	dir     string
	name    string
	log     *slog.Logger
	limiter *rateLimiter
	ctx     context.Context
	cancel  context.CancelFunc

	nextMu sync.Mutex // one Next at a time

	mu      sync.Mutex
	seen    map[string]observation // last size/mtime of each candidate
	pending map[string]string      // delivered, not yet acknowledged: name -> path
	// queue holds ready files from the last scan, so a backlog of
	// thousands is not rescanned for every frame.
	queue    []candidate
	lastScan time.Time
	bo       backoff
	seq      uint64
	st       Status
	// recovered is set once markers left by a previous run were handled.
	recovered bool
}

type observation struct {
	size  int64
	mtime time.Time
}

func openHotFolder(ctx context.Context, cfg Config, dir string) (*hotFolder, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("capture: resolving hot folder %q: %w", dir, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	h := &hotFolder{
		cfg:     cfg,
		dir:     abs,
		name:    cfg.URI,
		log:     cfg.Logger.With("source", cfg.URI, "kind", KindHotFolder.String()),
		limiter: newRateLimiter(cfg.MaxRate),
		ctx:     ctx,
		cancel:  cancel,
		seen:    map[string]observation{},
		pending: map[string]string{},
		bo:      backoff{min: cfg.BackoffMin, max: cfg.BackoffMax},
	}
	h.st = Status{Source: cfg.URI, Kind: KindHotFolder, State: StateConnecting}
	return h, nil
}

// Next returns the oldest settled image file not yet delivered, waiting for
// one. An unreadable folder is retried with backoff, reported in Status.
func (h *hotFolder) Next(ctx context.Context) (Frame, error) {
	h.nextMu.Lock()
	defer h.nextMu.Unlock()
	if err := h.limiter.wait(ctx); err != nil {
		return Frame{}, err
	}
	for {
		if h.ctx.Err() != nil {
			h.setClosed()
			return Frame{}, ErrClosed
		}
		f, ok, wait := h.take()
		if ok {
			h.limiter.mark()
			return f, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Frame{}, ctx.Err()
		case <-h.ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// take scans once and decodes the first ready file. Without a frame it says
// how long to wait before looking again.
func (h *hotFolder) take() (Frame, bool, time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.queue) == 0 || time.Since(h.lastScan) >= h.cfg.PollInterval {
		ready, err := h.scan()
		h.lastScan = time.Now()
		if err != nil {
			h.queue = nil
			wait := h.bo.next()
			h.st.State = StateReconnecting
			h.st.LastError = err.Error()
			h.st.LastErrorTime = time.Now()
			h.st.Backoff = wait
			h.st.Reconnects++
			h.log.Warn("hot folder unreadable; retrying", "err", err, "backoff", wait)
			return Frame{}, false, wait
		}
		if h.st.State != StateStreaming {
			h.log.Info("watching hot folder", "dir", h.dir)
		}
		h.bo.reset()
		h.st.State = StateStreaming
		h.st.Backoff = 0
		h.queue = ready
	}
	for len(h.queue) > 0 {
		c := h.queue[0]
		h.queue = h.queue[1:]
		if _, busy := h.pending[c.name]; busy {
			continue
		}
		if f, ok := h.decode(c); ok {
			return f, true, 0
		}
	}
	return Frame{}, false, h.cfg.PollInterval
}

type candidate struct {
	name string
	observation
}

// scan lists files ready to be read, oldest first. Caller holds mu.
func (h *hotFolder) scan() ([]candidate, error) {
	entries, err := os.ReadDir(h.dir)
	if err != nil {
		return nil, fmt.Errorf("reading hot folder: %w", err)
	}
	for _, sub := range []string{DoneDir, FailedDir} {
		if err := os.MkdirAll(filepath.Join(h.dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("creating hot folder subfolder: %w", err)
		}
	}
	if !h.recovered {
		h.recoverMarkers(entries)
		h.recovered = true
	}
	now := time.Now()
	present := make(map[string]bool, len(entries))
	var ready []candidate
	var empty []string
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !isImageName(name) {
			continue
		}
		present[name] = true
		if _, busy := h.pending[name]; busy {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // vanished since ReadDir
		}
		o := observation{size: info.Size(), mtime: info.ModTime()}
		prev, seenBefore := h.seen[name]
		h.seen[name] = o
		// Settled: not empty, untouched for SettleTime, and unchanged
		// since the last scan (a writer may hold mtime still briefly).
		if o.size == 0 {
			// Possibly created and not yet written; empty for long, broken.
			if now.Sub(o.mtime) >= incompleteGrace*h.cfg.SettleTime {
				empty = append(empty, name)
			}
			continue
		}
		if now.Sub(o.mtime) < h.cfg.SettleTime {
			continue
		}
		if seenBefore && (prev.size != o.size || !prev.mtime.Equal(o.mtime)) {
			continue
		}
		ready = append(ready, candidate{name, o})
	}
	for name := range h.seen {
		if !present[name] {
			delete(h.seen, name)
		}
	}
	for _, name := range empty {
		h.fail(name, fmt.Errorf("%w: still empty %v after it appeared", imageops.ErrEmpty, incompleteGrace*h.cfg.SettleTime))
	}
	sort.Slice(ready, func(i, j int) bool {
		if !ready[i].mtime.Equal(ready[j].mtime) {
			return ready[i].mtime.Before(ready[j].mtime)
		}
		return ready[i].name < ready[j].name
	})
	return ready, nil
}

// recoverMarkers moves files a previous process died holding to failed/ and
// removes stale markers. Caller holds mu.
func (h *hotFolder) recoverMarkers(entries []fs.DirEntry) {
	for _, e := range entries {
		marker := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(marker, ".") || !strings.HasSuffix(marker, markerSuffix) {
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(marker, "."), markerSuffix)
		if _, err := os.Lstat(filepath.Join(h.dir, name)); err == nil && isImageName(name) {
			h.fail(name, crashReason) // removes the marker
			continue
		}
		os.Remove(filepath.Join(h.dir, marker))
	}
}

func (h *hotFolder) markerPath(name string) string {
	return filepath.Join(h.dir, "."+name+markerSuffix)
}

// mark writes the marker of a file about to be decoded. It is not synced:
// it guards against the process dying, which leaves the page cache intact;
// after a power cut the file is simply tried again.
func (h *hotFolder) mark(name string) error {
	return os.WriteFile(h.markerPath(name), []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o600)
}

func (h *hotFolder) unmark(name string) {
	if err := os.Remove(h.markerPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		h.log.Warn("removing hot folder marker", "file", name, "err", err)
	}
}

// isImageName accepts finished image files and skips hidden files and the
// temporary names copy tools and camera software write under.
func isImageName(name string) bool {
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "~") {
		return false
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg", ".bmp":
		return true
	}
	return false
}

// decode reads one file. Broken files go to failed/; a file that looks cut
// short is left alone for a while in case its writer is merely slow. The
// file is checked (imageops.Check: format, completeness, dimensions and size
// limits) before it is decoded, and marked while it is in hand.
func (h *hotFolder) decode(c candidate) (Frame, bool) {
	path := filepath.Join(h.dir, c.name)
	data, err := imageops.ReadLimited(path, h.cfg.ImageLimits)
	if errors.Is(err, fs.ErrNotExist) {
		delete(h.seen, c.name)
		return Frame{}, false
	}
	if err != nil {
		h.fail(c.name, fmt.Errorf("reading: %w", err))
		return Frame{}, false
	}
	if _, err := imageops.Check(data, h.cfg.ImageLimits); err != nil {
		if errors.Is(err, imageops.ErrCorrupt) && time.Since(c.mtime) < incompleteGrace*h.cfg.SettleTime {
			h.log.Debug("hot folder file looks incomplete; waiting", "file", c.name, "err", err)
			return Frame{}, false
		}
		h.fail(c.name, err)
		return Frame{}, false
	}
	if err := h.mark(c.name); err != nil {
		// Without a marker a crash on this file would repeat at restart;
		// the folder refusing writes will also refuse the move to done/.
		h.log.Warn("cannot mark hot folder file before decoding", "file", c.name, "err", err)
	}
	m, err := imageops.DecodeLimited(data, h.cfg.ImageLimits)
	if err != nil {
		h.fail(c.name, fmt.Errorf("decoding: %w", err))
		return Frame{}, false
	}
	h.seq++
	h.pending[c.name] = path
	h.st.FramesGrabbed++
	h.st.FramesDelivered++
	h.st.LastFrame = time.Now()
	return Frame{Mat: m, Seq: h.seq, Time: c.mtime, PartID: c.name, Source: h.name, Size: c.size}, true
}

// fail moves a file to failed/ with its reason beside it. Caller holds mu.
func (h *hotFolder) fail(name string, reason error) { h.failPart(name, reason, true) }

// failPart is fail; notify calls Config.OnFailed once the file is moved.
func (h *hotFolder) failPart(name string, reason error, notify bool) {
	h.st.Failed++
	h.st.LastError = fmt.Sprintf("%s: %v", name, reason)
	h.st.LastErrorTime = time.Now()
	delete(h.seen, name)
	part := Frame{PartID: name, Source: h.name}
	if info, err := os.Lstat(filepath.Join(h.dir, name)); err == nil {
		part.Time, part.Size = info.ModTime(), info.Size()
	}
	dst, err := moveInto(h.dir, name, FailedDir)
	if err != nil {
		// The file stays; it will be retried on the next scan, which is
		// the best we can do if the folder refuses the move.
		h.log.Error("hot folder file unreadable and cannot be moved aside", "file", name, "reason", reason, "err", err)
		return
	}
	h.unmark(name)
	h.log.Error("hot folder file unreadable; moved to failed", "file", name, "reason", reason, "to", dst)
	note := fmt.Sprintf("%s\t%s\n", time.Now().UTC().Format(time.RFC3339), reason)
	if err := writeFileAtomic(dst+".reason.txt", []byte(note)); err != nil {
		h.log.Warn("writing failure reason", "file", name, "err", err)
	}
	if notify && h.cfg.OnFailed != nil {
		h.cfg.OnFailed(part, reason)
	}
}

// Ack moves a delivered file to done/. It may be called after Close, so a
// daemon shutting down can still acknowledge what it has queued.
func (h *hotFolder) Ack(f Frame) error {
	if f.Source != h.name {
		return fmt.Errorf("capture: acknowledging frame from %q on hot folder %q", f.Source, h.name)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.pending[f.PartID]; !ok {
		return fmt.Errorf("capture: acknowledging %q: not delivered or already acknowledged", f.PartID)
	}
	if _, err := moveInto(h.dir, f.PartID, DoneDir); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Someone took the file away; it cannot come back to be
			// inspected twice, so stop tracking it.
			delete(h.pending, f.PartID)
		}
		return fmt.Errorf("capture: acknowledging %q: %w", f.PartID, err)
	}
	delete(h.pending, f.PartID)
	delete(h.seen, f.PartID)
	h.unmark(f.PartID)
	return nil
}

// Fail moves a delivered file that could not be inspected to failed/ with
// the reason (the daemon has sent its error event): it was not inspected, so
// it does not belong in done/, and trying it again would fail again.
func (h *hotFolder) Fail(f Frame, reason error) error {
	if f.Source != h.name {
		return fmt.Errorf("capture: failing frame from %q on hot folder %q", f.Source, h.name)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.pending[f.PartID]; !ok {
		return fmt.Errorf("capture: failing %q: not delivered or already settled", f.PartID)
	}
	delete(h.pending, f.PartID)
	h.failPart(f.PartID, reason, false) // the caller has answered for it
	return nil
}

func (h *hotFolder) Status() Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st
}

func (h *hotFolder) setClosed() {
	h.mu.Lock()
	h.st.State = StateClosed
	h.mu.Unlock()
}

// Close stops the folder. Files delivered and not acknowledged lose their
// marker: this is a clean stop, not a crash, so they are tried again by the
// next process.
func (h *hotFolder) Close() error {
	h.cancel()
	h.setClosed()
	h.mu.Lock()
	for name := range h.pending {
		h.unmark(name)
	}
	h.mu.Unlock()
	h.lock.release()
	return nil
}

// moveInto renames dir/name into dir/sub, picking a fresh name if a part
// with the same file name was handled before, and syncs both folders so the
// move survives a power cut.
func moveInto(dir, name, sub string) (string, error) {
	dstDir := filepath.Join(dir, sub)
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dstDir, err)
	}
	dst := filepath.Join(dstDir, name)
	if _, err := os.Lstat(dst); err == nil {
		ext := filepath.Ext(name)
		dst = filepath.Join(dstDir, fmt.Sprintf("%s.%d%s", strings.TrimSuffix(name, ext), time.Now().UnixNano(), ext))
	}
	if err := os.Rename(filepath.Join(dir, name), dst); err != nil {
		return "", fmt.Errorf("moving into %s: %w", sub, err)
	}
	if err := syncDir(dstDir); err != nil {
		return dst, err
	}
	return dst, syncDir(dir)
}

func syncDir(dir string) error { return durable.SyncDir(dir) }

// writeFileAtomic writes via a temp file in the same folder so readers never
// see half a file.
func writeFileAtomic(path string, data []byte) error { return durable.WriteFile(path, data, 0o644) }
