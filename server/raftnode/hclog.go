package raftnode

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// slogLogger routes hashicorp/raft's and raft-wal's hclog output to slog. Only warnings and
// errors pass by default: raft's info lines (elections, snapshots) are noise at a node's scale.
type slogLogger struct {
	logger *slog.Logger
	name   string
	level  *atomic.Int32 // an hclog.Level, shared by the loggers derived with With and Named
	args   []any
}

var _ hclog.Logger = (*slogLogger)(nil)

func newHCLogger(logger *slog.Logger, level hclog.Level) hclog.Logger {
	l := &slogLogger{logger: logger, name: "raft", level: new(atomic.Int32)}
	l.level.Store(int32(level))
	return l
}

func toSlogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Info, hclog.NoLevel:
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (l *slogLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Warn && isFirstElection(msg, args) {
		// Every start of a node elects a leader: expected, not worth a warning.
		level = hclog.Info
	}
	if level == hclog.Off || level < l.GetLevel() {
		return
	}
	attrs := make([]any, 0, 2+len(l.args)+len(args))
	attrs = append(attrs, "component", l.name)
	attrs = append(attrs, l.args...)
	attrs = append(attrs, args...)
	l.logger.Log(context.Background(), toSlogLevel(level), msg, attrs...)
}

// isFirstElection reports raft's warning that it starts an election with no leader known yet.
func isFirstElection(msg string, args []any) bool {
	if msg != "heartbeat timeout reached, starting election" {
		return false
	}
	for i := 0; i+1 < len(args); i += 2 {
		if args[i] == "last-leader-id" {
			return fmt.Sprint(args[i+1]) == ""
		}
	}
	return false
}

func (l *slogLogger) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *slogLogger) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *slogLogger) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *slogLogger) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *slogLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *slogLogger) IsTrace() bool { return l.GetLevel() <= hclog.Trace }
func (l *slogLogger) IsDebug() bool { return l.GetLevel() <= hclog.Debug }
func (l *slogLogger) IsInfo() bool  { return l.GetLevel() <= hclog.Info }
func (l *slogLogger) IsWarn() bool  { return l.GetLevel() <= hclog.Warn }
func (l *slogLogger) IsError() bool { return l.GetLevel() <= hclog.Error }

func (l *slogLogger) ImpliedArgs() []any { return l.args }

func (l *slogLogger) With(args ...any) hclog.Logger {
	c := *l
	c.args = append(append([]any(nil), l.args...), args...)
	return &c
}

func (l *slogLogger) Name() string { return l.name }

func (l *slogLogger) Named(name string) hclog.Logger {
	c := *l
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (l *slogLogger) ResetNamed(name string) hclog.Logger {
	c := *l
	c.name = name
	return &c
}

func (l *slogLogger) SetLevel(level hclog.Level) { l.level.Store(int32(level)) }
func (l *slogLogger) GetLevel() hclog.Level      { return hclog.Level(l.level.Load()) }

func (l *slogLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

func (l *slogLogger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if opts != nil && opts.ForceLevel != hclog.NoLevel {
		level = opts.ForceLevel
	}
	return &stdWriter{l: l, level: level}
}

var levelPrefixes = []struct {
	prefix string
	level  hclog.Level
}{
	{"[ERROR]", hclog.Error}, {"[ERR]", hclog.Error}, {"[WARN]", hclog.Warn},
	{"[INFO]", hclog.Info}, {"[DEBUG]", hclog.Debug}, {"[TRACE]", hclog.Trace},
}

// stdWriter takes standard library log lines, as some dependencies write them.
type stdWriter struct {
	l     *slogLogger
	level hclog.Level
}

func (w *stdWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := w.level
	// Lines such as "[WARN] raft: ..." carry their own level.
	for _, p := range levelPrefixes {
		if rest, ok := strings.CutPrefix(msg, p.prefix); ok {
			level, msg = p.level, strings.TrimSpace(rest)
			break
		}
	}
	w.l.Log(level, msg)
	return len(p), nil
}
