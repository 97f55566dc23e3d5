package gossip

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// logWriter adapts memberlist's *log.Logger output to slog. memberlist
// writes one line per call, shaped "[LEVEL] memberlist: message"; the level
// picks the slog level and the rest becomes the message. Lines without a
// level are logged at Info.
type logWriter struct {
	log *slog.Logger
}

// newMemberlistLogger returns a *log.Logger, as memberlist.Config.Logger
// wants, that writes to l.
func newMemberlistLogger(l *slog.Logger) *log.Logger {
	return log.New(logWriter{log: l}, "", 0)
}

// Write logs one memberlist line. It never fails.
func (w logWriter) Write(p []byte) (int, error) {
	level, msg := parseMemberlistLine(p)
	w.log.Log(context.Background(), level, msg, "component", "memberlist")
	return len(p), nil
}

// parseMemberlistLine splits "[LEVEL] memberlist: message\n" into a slog
// level and "message".
func parseMemberlistLine(p []byte) (slog.Level, string) {
	line := bytes.TrimSpace(p)
	level := slog.LevelInfo
	if len(line) > 0 && line[0] == '[' {
		if end := bytes.IndexByte(line, ']'); end > 0 {
			switch string(line[1:end]) {
			case "DEBUG", "TRACE":
				level = slog.LevelDebug
			case "INFO":
				level = slog.LevelInfo
			case "WARN", "WARNING":
				level = slog.LevelWarn
			case "ERR", "ERROR":
				level = slog.LevelError
			}
			line = bytes.TrimSpace(line[end+1:])
		}
	} else if bytes.HasPrefix(line, []byte("Err: ")) {
		level = slog.LevelError
		line = line[len("Err: "):]
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	return level, string(line)
}
