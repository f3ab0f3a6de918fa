package daemon_test

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inspectd/inspectd/alerts"
	"github.com/inspectd/inspectd/synth"
)

// Every accepted trigger gets exactly one event: the PLC never waits forever
// for a part id. On main, a trigger that met a stalled camera, an ended video
// or an inspection error got no event at all.
func TestEveryTriggerGetsOneEvent(t *testing.T) {
	f := newFixture(t, 7)
	video := filepath.Join(f.dir, "three.avi")
	if err := synth.WriteVideo(video, 3, 10, partSize, 3, 1); err != nil {
		t.Fatal(err)
	}
	emptyHot := filepath.Join(f.dir, "empty-hot")
	os.MkdirAll(emptyHot, 0o755)
	cases := []struct {
		name     string
		source   string
		env      map[string]string
		triggers int
		// want[i] is the verdict of trigger i's event; reasons must contain
		// reason for error verdicts.
		want   []alerts.Verdict
		reason string
	}{
		{"stalled camera (no frame)", "dir:" + emptyHot, nil, 2,
			[]alerts.Verdict{alerts.VerdictError, alerts.VerdictError}, "no frame from the camera within"},
		{"video ends", video, map[string]string{"INSPECTD_SOURCE_LOOP": "false", "INSPECTD_SOURCE_PACE": "false"}, 5,
			[]alerts.Verdict{"", "", "", alerts.VerdictError, alerts.VerdictError}, "video source has ended"},
		{"frame above the pixel limit", video, map[string]string{"INSPECTD_SOURCE_LOOP": "true", "INSPECTD_MAX_IMAGE_PIXELS": "100"}, 2,
			[]alerts.Verdict{alerts.VerdictError, alerts.VerdictError}, "above INSPECTD_MAX_IMAGE_PIXELS=100"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			camera := fmt.Sprintf("trig%d", i)
			t.Setenv("INSPECTD_TRIGGER", "mqtt")
			t.Setenv("INSPECTD_CAMERA", camera)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			sub := subscribe(t, f.broker.URL(), camera)
			cfg := f.config(t, c.source)
			cfg.SpoolDir = filepath.Join(f.dir, "spool-"+camera)
			startDaemon(t, cfg)
			for deadline := time.Now().Add(10 * time.Second); sub.lastAvail() != "online"; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("daemon never online")
				}
			}
			for n := 0; n < c.triggers; n++ {
				sub.client.Publish(fmt.Sprintf("inspectd/%s/trigger", camera), 1, false, fmt.Sprintf("P-%d", n)).Wait()
			}
			events := sub.waitEvents(t, c.triggers, 30*time.Second)
			for n, ev := range events[:c.triggers] {
				if ev.PartID != fmt.Sprintf("P-%d", n) {
					t.Errorf("event %d is for part %q; want P-%d", n, ev.PartID, n)
				}
				// Error events carry the boot id too: seq has no gaps within it.
				if ev.BootID == "" || ev.BootID != events[0].BootID || ev.Seq != events[0].Seq+uint64(n) || ev.TriggeredAt.IsZero() {
					t.Errorf("event %d: boot %q seq %d triggered %v; want boot %q, seq %d and the trigger time", n, ev.BootID, ev.Seq, ev.TriggeredAt, events[0].BootID, events[0].Seq+uint64(n))
				}
				switch want := c.want[n]; want {
				case "":
					if ev.Verdict != alerts.VerdictOK && ev.Verdict != alerts.VerdictDefect {
						t.Errorf("event %d: verdict %q (%s); want an inspection", n, ev.Verdict, ev.Reason)
					}
				default:
					if ev.Verdict != want || !strings.Contains(ev.Reason, c.reason) {
						t.Errorf("event %d: verdict %q reason %q; want %q with %q", n, ev.Verdict, ev.Reason, want, c.reason)
					}
				}
			}
			// Exactly one each: nothing more arrives.
			time.Sleep(300 * time.Millisecond)
			if n := len(sub.uniqueEvents()); n != c.triggers {
				t.Errorf("%d events for %d triggers", n, c.triggers)
			}
		})
	}
}

// A part inspected again after a crash (between the spool write and the
// move to done/) gets the same event id, so subscribers dropping duplicates
// by id see it once. On main the two events had different random ids.
func TestHotFolderEventIDSurvivesRestart(t *testing.T) {
	f := newFixture(t, 10)
	hot := filepath.Join(f.dir, "hot")
	names := dropParts(t, hot, 0, 1)
	sub := subscribe(t, f.broker.URL(), "cam0")
	cfg := f.config(t, "dir:"+hot)
	_, stop := startDaemon(t, cfg)
	first := sub.waitEvents(t, 1, 30*time.Second)[0]
	stop()
	// The state a crash before the move leaves: the file back in place
	// (rename keeps its modification time), its event already sent.
	if err := os.Rename(filepath.Join(hot, "done", names[0]), filepath.Join(hot, names[0])); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, cfg)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		sub.mu.Lock()
		n := len(sub.events)
		var second alerts.Event
		if n >= 2 {
			second = sub.events[n-1]
		}
		sub.mu.Unlock()
		if n >= 2 {
			if second.ID != first.ID || second.PartID != first.PartID {
				t.Fatalf("second inspection: id %s part %s; first: id %s part %s", second.ID, second.PartID, first.ID, first.PartID)
			}
			if u := sub.uniqueEvents(); len(u) != 1 {
				t.Fatalf("%d distinct events for one part", len(u))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the part was not inspected again")
		}
	}
}

// hugePNG is a small PNG whose header declares w x h pixels.
func hugePNG(w, h uint32) []byte {
	chunk := func(typ string, data []byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		b = append(append(b, typ...), data...)
		return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := append(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, w), h), 8, 2, 0, 0, 0)
	out := append([]byte("\x89PNG\r\n\x1a\n"), chunk("IHDR", ihdr)...)
	out = append(out, chunk("IDAT", make([]byte, 1024))...)
	return append(out, chunk("IEND", nil)...)
}

// A hot-folder file refused before inspection (too large, not an image)
// goes to failed/ and still gets its one event, verdict error with the
// reason; the good part behind it is inspected.
func TestHotFolderRefusedFilesGetErrorEvents(t *testing.T) {
	f := newFixture(t, 11)
	hot := filepath.Join(f.dir, "hot")
	os.MkdirAll(hot, 0o755)
	cases := []struct{ file, reason string }{
		{"huge.png", "image too large: 20000x20000"},
		{"text.jpg", "not a PNG, JPEG or BMP"},
	}
	old := time.Now().Add(-time.Minute)
	for i, c := range cases {
		data := hugePNG(20000, 20000)
		if i == 1 {
			data = []byte("hello\xff\xd9")
		}
		path := filepath.Join(hot, c.file)
		os.WriteFile(path, data, 0o644)
		os.Chtimes(path, old, old)
	}
	good := dropParts(t, hot, 0, 1)
	sub := subscribe(t, f.broker.URL(), "cam0")
	startDaemon(t, f.config(t, "dir:"+hot))
	events := sub.waitEvents(t, len(cases)+1, 30*time.Second)
	byPart := map[string]alerts.Event{}
	for _, ev := range events {
		byPart[ev.PartID] = ev
	}
	for _, c := range cases {
		ev, ok := byPart[c.file]
		if !ok || ev.Verdict != alerts.VerdictError || !strings.Contains(ev.Reason, c.reason) {
			t.Errorf("%s: event %+v; want verdict error with %q", c.file, ev, c.reason)
		}
		if _, err := os.Stat(filepath.Join(hot, "failed", c.file)); err != nil {
			t.Errorf("%s not in failed/: %v", c.file, err)
		}
	}
	if ev := byPart[good[0]]; ev.Verdict != alerts.VerdictOK && ev.Verdict != alerts.VerdictDefect {
		t.Errorf("good part: %+v", ev)
	}
}

// A trigger is answered with a frame captured at or after the trigger time
// plus INSPECTD_TRIGGER_DELAY, not with the newest frame the camera grabbed
// before it: on main that frame could show the previous part, or this one
// still moving.
func TestTriggerInspectsFrameCapturedAfterDelay(t *testing.T) {
	f := newFixture(t, 12)
	video := filepath.Join(f.dir, "line.avi")
	if err := synth.WriteVideo(video, 10, 10, partSize, 3, 1); err != nil {
		t.Fatal(err)
	}
	const delay = 300 * time.Millisecond
	sub := subscribe(t, f.broker.URL(), "cam0")
	t.Setenv("INSPECTD_TRIGGER", "mqtt")
	// A paced, looping video is a camera: it keeps only its newest frame,
	// stamped when grabbed.
	t.Setenv("INSPECTD_SOURCE_LOOP", "true")
	t.Setenv("INSPECTD_TRIGGER_DELAY", delay.String())
	cfg := f.config(t, video)
	startDaemon(t, cfg)
	waitUntil(t, 30*time.Second, "online", func() bool { return sub.lastAvail() == "online" })
	const triggers = 3
	for n := 0; n < triggers; n++ {
		sub.client.Publish("inspectd/cam0/trigger", 1, false, fmt.Sprintf("D-%d", n)).Wait()
	}
	for n, ev := range sub.waitEvents(t, triggers, 30*time.Second)[:triggers] {
		if ev.Verdict != alerts.VerdictOK && ev.Verdict != alerts.VerdictDefect {
			t.Errorf("event %d: verdict %q (%s); want an inspection", n, ev.Verdict, ev.Reason)
			continue
		}
		if ev.TriggeredAt.IsZero() || ev.CapturedAt.Before(ev.TriggeredAt.Add(delay)) {
			t.Errorf("event %d (%s): captured_at %v, triggered_at %v; want captured at or after the trigger + %v",
				n, ev.PartID, ev.CapturedAt, ev.TriggeredAt, delay)
		}
	}
}
