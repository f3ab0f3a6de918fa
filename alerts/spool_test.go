package alerts

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func eventJSON(id string) []byte { return []byte(fmt.Sprintf(`{"id":%q,"seq":1}`, id)) }

func eventJSONWithHeatmap(id string) []byte {
	return []byte(fmt.Sprintf(`{"id":%q,"seq":1,"heatmap_topic":"p/c/heatmap/%s"}`, id, id))
}

func openTestSpool(t *testing.T, dir string, maxBytes int64, maxEntries int) (*spool, *syncBuffer) {
	t.Helper()
	log, buf := testLogger(t)
	s, err := openSpool(dir, maxBytes, maxEntries, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s, buf
}

// drain reads and removes every entry, returning their ids in order.
func drain(t *testing.T, s *spool) []string {
	t.Helper()
	var ids []string
	for {
		e, ok := s.oldest()
		if !ok {
			return ids
		}
		ids = append(ids, e.id)
		if err := s.remove(e.seq); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSpoolOrderAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTestSpool(t, dir, 1<<20, 100)
	for i := range 5 {
		if _, err := s.append(eventJSON(fmt.Sprint("e", i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	e, _ := s.oldest()
	if err := s.remove(e.seq); err != nil {
		t.Fatal(err)
	}
	s.close()

	// A temp file left by a crash mid-write must disappear, not be sent.
	if err := os.WriteFile(filepath.Join(dir, spoolTmp+"123"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, _ := openTestSpool(t, dir, 1<<20, 100)
	if d, _, _, _ := r.stats(); d != 4 {
		t.Fatalf("depth after reopen = %d, want 4", d)
	}
	seq, err := r.append(eventJSONWithHeatmap("e5"), []byte{0xFF, 0xD8, 0xFF, 1})
	if err != nil {
		t.Fatal(err)
	}
	if seq != 6 {
		t.Errorf("sequence after reopen = %d, want 6 (continues after the highest on disk)", seq)
	}
	if got := strings.Join(drain(t, r), ","); got != "e1,e2,e3,e4,e5" {
		t.Errorf("order after reopen = %s", got)
	}
	if _, err := os.Stat(filepath.Join(dir, spoolTmp+"123")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file still there: %v", err)
	}
}

func TestSpoolLockedAgainstSecondWriter(t *testing.T) {
	dir := t.TempDir()
	openTestSpool(t, dir, 1<<20, 10)
	log, _ := testLogger(t)
	if s, err := openSpool(dir, 1<<20, 10, log); err == nil {
		s.close()
		t.Fatal("second openSpool on the same directory succeeded")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("err = %v, want it to say the spool is in use", err)
	}
}

func TestSpoolBound(t *testing.T) {
	entrySize := int64(spoolOverhead + len(eventJSONWithHeatmap("e0")) + 100)
	cases := []struct {
		name        string
		maxEntries  int
		maxBytes    int64
		appends     int
		wantDepth   int
		wantDropped uint64
		wantFirst   string
	}{
		{"under both bounds", 10, 1 << 20, 6, 6, 0, "e0"},
		{"entry bound", 4, 1 << 20, 6, 4, 2, "e2"},
		{"byte bound", 100, 3*entrySize + 10, 6, 3, 3, "e3"},
		{"both, bytes tighter", 5, 2 * entrySize, 6, 2, 4, "e4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, logs := openTestSpool(t, t.TempDir(), tc.maxBytes, tc.maxEntries)
			for i := range tc.appends {
				if _, err := s.append(eventJSONWithHeatmap(fmt.Sprint("e", i)), make([]byte, 100)); err != nil {
					t.Fatal(err)
				}
			}
			depth, size, dropped, _ := s.stats()
			if depth != tc.wantDepth || dropped != tc.wantDropped {
				t.Errorf("depth=%d dropped=%d, want %d and %d", depth, dropped, tc.wantDepth, tc.wantDropped)
			}
			if size > tc.maxBytes || depth > tc.maxEntries {
				t.Errorf("bound exceeded: %d bytes / %d entries", size, depth)
			}
			files, _ := filepath.Glob(filepath.Join(s.dir, "*"+spoolExt))
			if len(files) != depth {
				t.Errorf("%d files on disk, depth %d", len(files), depth)
			}
			if tc.wantDropped > 0 && !strings.Contains(logs.String(), "dropping oldest") {
				t.Error("no warning logged for dropped events")
			}
			if e, _ := s.oldest(); e.id != tc.wantFirst {
				t.Errorf("oldest kept = %s, want %s", e.id, tc.wantFirst)
			}
		})
	}

	t.Run("entry larger than the bound", func(t *testing.T) {
		s, _ := openTestSpool(t, t.TempDir(), 1000, 10)
		if _, err := s.append(eventJSON("ok"), nil); err != nil {
			t.Fatal(err)
		}
		_, err := s.append(eventJSONWithHeatmap("big"), make([]byte, 2000))
		if !errors.Is(err, errEntryTooBig) {
			t.Errorf("err = %v, want errEntryTooBig", err)
		}
		if d, _, dr, _ := s.stats(); d != 1 || dr != 0 {
			t.Errorf("an oversized entry changed the spool: depth %d dropped %d", d, dr)
		}
	})
}

func TestSpoolCorruptEntryMovedAside(t *testing.T) {
	valid := encodeEntry(eventJSON("bad"), nil)
	cases := []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"flipped byte", func(b []byte) []byte { b[len(spoolMagic)+6] ^= 0x20; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-7] }},
		{"empty", func([]byte) []byte { return nil }},
		{"bad magic", func(b []byte) []byte { copy(b, "XXXXXXXX"); return b }},
		{"length beyond end", func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[len(spoolMagic):], 1<<30)
			return resum(b)
		}},
		{"JSON without id, valid checksum", func([]byte) []byte { return encodeEntry([]byte(`{"seq":1}`), nil) }},
		{"not JSON, valid checksum", func([]byte) []byte { return encodeEntry([]byte(`{{{`), nil) }},
		{"heatmap without topic", func([]byte) []byte { return encodeEntry(eventJSON("bad"), []byte{0xFF, 0xD8}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openTestSpool(t, dir, 1<<20, 100)
			var bad uint64
			for _, id := range []string{"first", "bad", "last"} {
				seq, err := s.append(eventJSON(id), nil)
				if err != nil {
					t.Fatal(err)
				}
				if id == "bad" {
					bad = seq
				}
			}
			damaged := tc.damage(append([]byte(nil), valid...))
			if err := os.WriteFile(s.path(bad), damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			s.close()

			r, logs := openTestSpool(t, dir, 1<<20, 100)
			if got := strings.Join(drain(t, r), ","); got != "first,last" {
				t.Errorf("read %s, want first,last", got)
			}
			if _, _, _, corrupt := r.stats(); corrupt != 1 {
				t.Errorf("corrupt counter = %d, want 1", corrupt)
			}
			if _, err := os.Stat(filepath.Join(dir, corruptSubdir, filepath.Base(r.path(bad)))); err != nil {
				t.Errorf("damaged entry not in %s/: %v", corruptSubdir, err)
			}
			if !strings.Contains(logs.String(), "level=ERROR") {
				t.Error("no error logged for the corrupt entry")
			}
		})
	}
}

// resum recomputes the trailing checksum so only the damage inside is seen.
func resum(b []byte) []byte {
	binary.BigEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b
}
