package alerts

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/inspectd/inspectd/internal/durable"
)

// On-disk layout of one spool entry, file <seq as 20 digits>.entry:
//
//	"INSPSPL1" | u32 len | event JSON | u32 len | heatmap JPEG | u32 CRC-32C
//
// integers big-endian, the CRC over every byte before it.
const (
	spoolMagic    = "INSPSPL1"
	spoolExt      = ".entry"
	spoolTmp      = ".tmp-"
	spoolLock     = ".lock"
	corruptSubdir = "corrupt"
	spoolOverhead = len(spoolMagic) + 3*4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errEntryTooBig is returned when one entry alone exceeds SpoolMaxBytes.
var errEntryTooBig = errors.New("entry larger than SpoolMaxBytes")

type spoolItem struct {
	seq  uint64
	size int64
}

type spoolEntry struct {
	seq     uint64
	event   []byte // JSON, exactly as published
	heatmap []byte // nil when the event has none
	id      string
	hmTopic string
}

// spool is a directory of entries, one file each, sent oldest first.
// One file per entry (rather than an append-only log) makes removal after
// the PUBACK a single unlink, needs no compaction, and confines damage from
// a torn write or a bad sector to one event.
type spool struct {
	dir        string
	maxBytes   int64
	maxEntries int
	log        *slog.Logger
	lock       *os.File

	appendMu sync.Mutex // serialises appends

	mu       sync.Mutex
	items    []spoolItem // ascending seq
	bytes    int64
	nextSeq  uint64
	dropped  uint64
	corrupt  uint64
	lastWarn time.Time
	unwarned uint64 // drops since the last warning

	// write stores one entry durably (writeFileAtomic; tests inject
	// failures). Entries whose write failed (disk full, I/O error) wait in
	// held, in order, and are written again by flush; while any wait, new
	// entries queue behind them so the spool stays in sequence order.
	write       func(path string, data []byte) error
	held        []heldEntry
	heldBytes   int64
	writeErrors uint64
	writeErr    error // the last write error; nil once writes succeed
}

type heldEntry struct {
	seq  uint64
	buf  []byte
	size int64
}

// maxHeldBytes bounds the entries kept in memory while the spool cannot be
// written (besides SpoolMaxBytes).
const maxHeldBytes = 64 << 20

func openSpool(dir string, maxBytes int64, maxEntries int, log *slog.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("alerts: creating spool %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, spoolLock), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("alerts: opening spool lock: %w", err)
	}
	// Two writers would interleave sequence numbers and delete each other's
	// entries; the lock makes a second daemon on the same spool fail loudly.
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("alerts: spool %s is in use by another publisher: %w", dir, err)
	}
	s := &spool{dir: dir, maxBytes: maxBytes, maxEntries: maxEntries, log: log, lock: lock, nextSeq: 1, write: writeFileAtomic}
	des, err := os.ReadDir(dir)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("alerts: reading spool %s: %w", dir, err)
	}
	for _, de := range des {
		name := de.Name()
		switch {
		case strings.HasPrefix(name, spoolTmp) || durable.IsTemp(name):
			// A write interrupted before its rename: never acknowledged to
			// the caller as spooled, so nothing is lost by removing it.
			_ = os.Remove(filepath.Join(dir, name))
		case strings.HasSuffix(name, spoolExt) && de.Type().IsRegular():
			seq, err := strconv.ParseUint(strings.TrimSuffix(name, spoolExt), 10, 64)
			if err != nil {
				s.quarantine(name, fmt.Errorf("file name is not a sequence number: %w", err))
				continue
			}
			info, err := de.Info()
			if err != nil {
				continue
			}
			s.items = append(s.items, spoolItem{seq: seq, size: info.Size()})
			s.bytes += info.Size()
			s.nextSeq = max(s.nextSeq, seq+1)
		}
	}
	slices.SortFunc(s.items, func(a, b spoolItem) int {
		switch {
		case a.seq < b.seq:
			return -1
		case a.seq > b.seq:
			return 1
		}
		return 0
	})
	return s, nil
}

func (s *spool) close() {
	if s.lock != nil {
		_ = syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
		s.lock.Close()
		s.lock = nil
	}
}

func (s *spool) path(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, spoolExt))
}

// append writes one entry durably (temp file, fsync, rename, fsync of the
// directory) and only then returns, dropping the oldest entries first when
// the new one would exceed a bound. Appends are serialised by appendMu so
// entries become visible in sequence order; mu is not held across the
// fsyncs, so the sender is not held up by them.
func (s *spool) append(event, heatmap []byte) (uint64, error) {
	size := int64(spoolOverhead + len(event) + len(heatmap))
	if size > s.maxBytes {
		return 0, fmt.Errorf("alerts: spooling event: %d bytes: %w (%d)", size, errEntryTooBig, s.maxBytes)
	}
	buf := encodeEntry(event, heatmap)

	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	s.mu.Lock()
	seq := s.nextSeq
	s.nextSeq++ // a failed entry leaves a gap, which the sender skips
	backlog := len(s.held) > 0
	s.mu.Unlock()

	var err error
	if !backlog {
		if err = s.write(s.path(seq), buf); err == nil {
			s.mu.Lock()
			s.addLocked(seq, size)
			s.writeErr = nil
			s.mu.Unlock()
			return seq, nil
		}
	} else {
		err = s.lastWriteError()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil && !backlog {
		s.writeErrors++
		s.writeErr = err
	}
	if s.heldBytes+size > min(maxHeldBytes, s.maxBytes) {
		return 0, fmt.Errorf("alerts: spooling event: %w (and %d events already wait in memory: event lost)", err, len(s.held))
	}
	s.held = append(s.held, heldEntry{seq: seq, buf: buf, size: size})
	s.heldBytes += size
	return seq, fmt.Errorf("%w: %w", ErrNotDurable, err)
}

// addLocked records a written entry, dropping the oldest beyond the bounds.
func (s *spool) addLocked(seq uint64, size int64) {
	for len(s.items) > 0 && (len(s.items)+1 > s.maxEntries || s.bytes+size > s.maxBytes) {
		s.dropOldestLocked()
	}
	s.items = append(s.items, spoolItem{seq: seq, size: size})
	s.bytes += size
}

func (s *spool) lastWriteError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeErr == nil {
		return errors.New("spool write failed")
	}
	return s.writeErr
}

// flush writes the entries held in memory, oldest first, stopping at the
// first failure. It reports how many were written.
func (s *spool) flush() (int, error) {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	n := 0
	for {
		s.mu.Lock()
		if len(s.held) == 0 {
			s.writeErr = nil
			s.mu.Unlock()
			return n, nil
		}
		h := s.held[0]
		s.mu.Unlock()
		if err := s.write(s.path(h.seq), h.buf); err != nil {
			s.mu.Lock()
			s.writeErrors++
			s.writeErr = err
			s.mu.Unlock()
			return n, err
		}
		s.mu.Lock()
		s.held = s.held[1:]
		s.heldBytes -= h.size
		s.addLocked(h.seq, h.size)
		s.mu.Unlock()
		n++
	}
}

// health is what the spool has in memory and why.
func (s *spool) health() (held int, writeErrors uint64, lastErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.writeErr != nil {
		lastErr = s.writeErr.Error()
	}
	return len(s.held), s.writeErrors, lastErr
}

func (s *spool) dropOldestLocked() {
	it := s.items[0]
	s.items = s.items[1:]
	s.bytes -= it.size
	if err := os.Remove(s.path(it.seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Error("alerts: removing dropped spool entry", "seq", it.seq, "err", err)
	}
	s.dropped++
	s.unwarned++
	// One warning per 10 s: a long outage at line rate would otherwise
	// flood the journal with one line per part.
	if now := time.Now(); now.Sub(s.lastWarn) >= 10*time.Second {
		s.log.Warn("alerts: spool full, dropping oldest events",
			"dropped_now", s.unwarned, "dropped_total", s.dropped,
			"max_entries", s.maxEntries, "max_bytes", s.maxBytes, "dir", s.dir)
		s.lastWarn = now
		s.unwarned = 0
	}
}

// oldest returns the first readable entry.
func (s *spool) oldest() (spoolEntry, bool) { return s.after(0) }

// after returns the first readable entry with a sequence number above seq.
// Unreadable or damaged entries are moved to the corrupt/ subfolder with an
// error log, never retried forever.
func (s *spool) after(seq uint64) (spoolEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		i, _ := slices.BinarySearchFunc(s.items, seq+1, cmpItemSeq)
		if i == len(s.items) {
			return spoolEntry{}, false
		}
		it := s.items[i]
		name := filepath.Base(s.path(it.seq))
		data, err := os.ReadFile(s.path(it.seq))
		if errors.Is(err, fs.ErrNotExist) {
			s.deleteItemLocked(i)
			continue
		}
		var e spoolEntry
		if err == nil {
			e, err = decodeEntry(data)
		}
		if err != nil {
			s.deleteItemLocked(i)
			s.quarantine(name, err)
			continue
		}
		e.seq = it.seq
		return e, true
	}
}

func cmpItemSeq(it spoolItem, seq uint64) int {
	switch {
	case it.seq < seq:
		return -1
	case it.seq > seq:
		return 1
	}
	return 0
}

func (s *spool) deleteItemLocked(i int) {
	s.bytes -= s.items[i].size
	s.items = slices.Delete(s.items, i, i+1)
}

func (s *spool) quarantine(name string, why error) {
	s.corrupt++
	dst := filepath.Join(s.dir, corruptSubdir, name)
	err := os.MkdirAll(filepath.Dir(dst), 0o750)
	if err == nil {
		err = os.Rename(filepath.Join(s.dir, name), dst)
	}
	if err != nil {
		s.log.Error("alerts: corrupt spool entry could not be moved aside; deleting it",
			"file", name, "reason", why, "err", err)
		_ = os.Remove(filepath.Join(s.dir, name))
		return
	}
	s.log.Error("alerts: corrupt spool entry moved aside, skipped", "file", dst, "reason", why)
}

// remove deletes an acknowledged entry; a missing one (dropped meanwhile) is fine.
func (s *spool) remove(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := slices.BinarySearchFunc(s.items, seq, cmpItemSeq)
	if !found {
		return nil
	}
	s.deleteItemLocked(i)
	if err := os.Remove(s.path(seq)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("alerts: removing sent spool entry %d: %w", seq, err)
	}
	return nil
}

func (s *spool) stats() (depth int, size int64, dropped, corrupt uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items), s.bytes, s.dropped, s.corrupt
}

func encodeEntry(event, heatmap []byte) []byte {
	buf := make([]byte, 0, spoolOverhead+len(event)+len(heatmap))
	buf = append(buf, spoolMagic...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(event)))
	buf = append(buf, event...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(heatmap)))
	buf = append(buf, heatmap...)
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

func decodeEntry(data []byte) (spoolEntry, error) {
	var e spoolEntry
	if len(data) < spoolOverhead {
		return e, fmt.Errorf("truncated: %d bytes", len(data))
	}
	if !bytes.HasPrefix(data, []byte(spoolMagic)) {
		return e, errors.New("bad magic")
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return e, errors.New("checksum mismatch")
	}
	rest := body[len(spoolMagic):]
	next := func() ([]byte, error) {
		if len(rest) < 4 {
			return nil, errors.New("truncated length")
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(n) > uint64(len(rest)) {
			return nil, fmt.Errorf("length %d beyond end", n)
		}
		part := rest[:n]
		rest = rest[n:]
		return part, nil
	}
	var err error
	if e.event, err = next(); err != nil {
		return e, err
	}
	hm, err := next()
	if err != nil {
		return e, err
	}
	if len(rest) != 0 {
		return e, fmt.Errorf("%d trailing bytes", len(rest))
	}
	if len(hm) > 0 {
		e.heatmap = hm
	}
	var head struct {
		ID           string `json:"id"`
		HeatmapTopic string `json:"heatmap_topic"`
	}
	if err := json.Unmarshal(e.event, &head); err != nil {
		return e, fmt.Errorf("event JSON: %w", err)
	}
	if head.ID == "" {
		return e, errors.New("event without id")
	}
	if (len(e.heatmap) > 0) != (head.HeatmapTopic != "") {
		return e, errors.New("heatmap and heatmap_topic disagree")
	}
	e.id, e.hmTopic = head.ID, head.HeatmapTopic
	return e, nil
}

// writeFileAtomic makes path appear complete or not at all, and durable
// before it returns (mode 0600 less the umask).
func writeFileAtomic(path string, data []byte) error {
	return durable.WriteFile(path, data, 0o600)
}
