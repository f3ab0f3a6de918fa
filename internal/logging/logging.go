// Package logging makes the daemon's slog handler in the format its reader
// wants: plain text on a terminal, text with syslog priority prefixes for
// journald, or JSON for a log shipper. Every format masks URL passwords
// (internal/redact).
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/inspectd/inspectd/internal/redact"
)

// Format is how log records are written.
type Format string

const (
	// Auto is Journal when stderr is the journal's stream, else Text.
	Auto Format = "auto"
	// Text is slog's key=value lines with a time.
	Text Format = "text"
	// Journal is key=value lines without a time (journald stamps them),
	// each starting with its syslog priority, "<3>" for errors, which
	// journald takes as the entry's PRIORITY (so `journalctl -p err` and
	// the colours work).
	Journal Format = "journal"
	// JSON is one JSON object per line.
	JSON Format = "json"
)

// Formats lists the accepted values of INSPECTD_LOG_FORMAT.
var Formats = []Format{Auto, Text, Journal, JSON}

// Resolve turns Auto into Journal or Text. journalStream is $JOURNAL_STREAM
// (device:inode of the stream systemd connected stdout/stderr to); it
// counts only when it is the stream w writes to, since a shell started from
// a unit inherits it with a terminal as stderr.
func Resolve(f Format, journalStream string, w io.Writer) Format {
	if f != Auto {
		return f
	}
	if journalStream != "" && sameStream(journalStream, w) {
		return Journal
	}
	return Text
}

func sameStream(journalStream string, w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	dev, ino, ok := strings.Cut(journalStream, ":")
	if !ok {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return strconv.FormatUint(uint64(st.Dev), 10) == dev && strconv.FormatUint(st.Ino, 10) == ino
}

// New returns a logger writing to w in format f (Auto is taken as Text:
// Resolve it first).
func New(w io.Writer, f Format, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch f {
	case JSON:
		h = slog.NewJSONHandler(w, opts)
	case Journal:
		pw := &priorityWriter{w: w}
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // journald has the time
			}
			return a
		}
		h = &journalHandler{inner: slog.NewTextHandler(pw, opts), w: pw}
	default:
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(redact.Handler(h))
}

// Priority is the syslog priority of a level: 3 error, 4 warning,
// 6 info, 7 debug.
func Priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

// priorityWriter puts the priority of the record being written before it.
// The text handler writes each record in one Write, made while
// journalHandler holds mu.
type priorityWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (p *priorityWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

type journalHandler struct {
	inner slog.Handler
	w     *priorityWriter // shared by the handlers WithAttrs and WithGroup derive
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	h.w.prefix = fmt.Sprintf("<%d>", Priority(r.Level))
	return h.inner.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{inner: h.inner.WithAttrs(as), w: h.w}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{inner: h.inner.WithGroup(name), w: h.w}
}
