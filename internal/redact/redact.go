// Package redact removes credentials from text before it reaches a log, an
// error message or the status topic: the user info of every URL in it
// (rtsp://user:secret@camera/..., tcp://user:secret@broker:1883, also inside
// a GStreamer pipeline or an error from a library) becomes "***@".
package redact

import (
	"context"
	"log/slog"
	"regexp"
)

// userinfo matches scheme://...@ up to the last @ before the path, so a
// password with an unencoded @ is hidden whole.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)[^\s/?#"'<>]*@`)

// Mask replaces user info.
const Mask = "***"

// String returns s with the user info of every URL in it masked.
func String(s string) string {
	if !hasScheme(s) {
		return s
	}
	return userinfo.ReplaceAllString(s, "${1}"+Mask+"@")
}

func hasScheme(s string) bool {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == ':' && s[i+1] == '/' && s[i+2] == '/' {
			return true
		}
	}
	return false
}

// Error wraps err so its message is redacted; errors.Is and As still see
// the original.
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if r := String(msg); r != msg {
		return &redacted{msg: r, err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// Handler wraps h so that the message and every attribute (strings, errors,
// anything printed with %v, in groups too) are redacted: whatever a package
// logs, a URL's password does not reach the journal.
func Handler(h slog.Handler) slog.Handler { return handler{h} }

type handler struct{ h slog.Handler }

func (r handler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, String(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(attr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r handler) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = attr(a)
	}
	return handler{r.h.WithAttrs(red)}
}

func (r handler) WithGroup(name string) slog.Handler { return handler{r.h.WithGroup(name)} }

func attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, String(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, x := range g {
			red[i] = attr(x)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		// errors, Stringers, URLs, slices: as they would print.
		return slog.String(a.Key, String(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}
