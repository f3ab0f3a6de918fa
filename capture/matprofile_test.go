//go:build matprofile

package capture

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// TestNoMatLeakOverManyFrames runs each long-lived path for a few hundred
// frames with a consumer that closes what it gets; the count of live Mats
// must come back to where it started.
func TestNoMatLeakOverManyFrames(t *testing.T) {
	video := writeVideo(t, "leak.avi", 20, 25)
	dir := t.TempDir()
	png := encodeImage(t, gocv.PNGFileExt, 77)
	for i := 0; i < 300; i++ {
		writeOld(t, filepath.Join(dir, fmt.Sprintf("%03d.png", i)), png, time.Minute)
	}
	writeOld(t, filepath.Join(dir, "broken.png"), []byte("nope"), 2*time.Minute)

	cases := []struct {
		name string
		cfg  Config
	}{
		{name: "newest wins, frames dropped", cfg: Config{URI: video, Loop: true, Pace: true, PaceFPS: 1000}},
		{name: "lossless replay with loops", cfg: Config{URI: video, Loop: true}},
		{name: "hot folder with a failure", cfg: hotConfig(dir)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := gocv.MatProfile.Count()
			src := mustOpen(t, c.cfg)
			for i := 0; i < 300; i++ {
				f, err := nextWithin(t, src, 3*time.Second)
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if err := src.Ack(f); err != nil {
					t.Fatal(err)
				}
				f.Mat.Close()
				if i%50 == 0 {
					time.Sleep(5 * time.Millisecond) // let the grabber supersede frames
				}
			}
			// In flight by design: the frame in the slot and, in the
			// reader's hands, the next one read ahead (a lossless reader
			// waits with it for the slot to empty). A leak grows with the
			// 300 frames; these two do not.
			if during := gocv.MatProfile.Count(); during > before+2 {
				t.Errorf("live Mats grew from %d to %d while streaming", before, during)
			}
			src.Close()
			if after := gocv.MatProfile.Count(); after != before {
				t.Fatalf("live Mats %d before, %d after Close", before, after)
			}
			st := src.Status()
			t.Logf("grabbed %d delivered %d dropped %d failed %d", st.FramesGrabbed, st.FramesDelivered, st.FramesDropped, st.Failed)
		})
	}
	if _, err := os.Stat(filepath.Join(dir, FailedDir, "broken.png")); err != nil {
		t.Fatalf("broken file not moved aside: %v", err)
	}
}
