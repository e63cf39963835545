package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// usageError is a mistake in how a command was called; it exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// command is one subcommand of the orchestrator binary.
type command struct {
	name    string
	summary string
	// args names the positional arguments the command takes, in usage
	// ("ID WORKSPACE"); a command without takes none.
	args string
	// setup defines the command's flags and returns the function that runs
	// it once they are parsed.
	setup func(fs *flagSet) func(env *runEnv) error
	// logLevel is the command's default --log-level; "" for info.
	logLevel string
}

// runEnv is what a command runs with.
type runEnv struct {
	args   []string // positional arguments, as many as the command names
	ctx    context.Context
	log    *zap.Logger
	stdout io.Writer
	stderr io.Writer
}

// flagSet is a flag.FlagSet whose flags may each have an environment variable
// that sets them when the command line does not.
type flagSet struct {
	*flag.FlagSet
	env        map[string]string // flag name → environment variable
	positional []string          // the arguments that are not flags, in order
}

func newFlagSet(name string, stderr io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: map[string]string{}}
	fs.SetOutput(stderr)
	return fs
}

// mirror records that environment variable env sets flag name.
func (fs *flagSet) mirror(name, env string) {
	if fs.Lookup(name) == nil {
		panic("mirror of undefined flag " + name)
	}
	fs.env[name] = env
}

func (fs *flagSet) stringVar(p *string, name, env, value, usage string) {
	fs.StringVar(p, name, value, usage)
	if env != "" {
		fs.mirror(name, env)
	}
}

func (fs *flagSet) intVar(p *int, name, env string, value int, usage string) {
	fs.IntVar(p, name, value, usage)
	if env != "" {
		fs.mirror(name, env)
	}
}

func (fs *flagSet) boolVar(p *bool, name, env string, value bool, usage string) {
	fs.BoolVar(p, name, value, usage)
	if env != "" {
		fs.mirror(name, env)
	}
}

func (fs *flagSet) durationVar(p *time.Duration, name, env string, value time.Duration, usage string) {
	fs.DurationVar(p, name, value, usage)
	if env != "" {
		fs.mirror(name, env)
	}
}

// listValue is a repeatable flag; from the environment it takes a
// comma-separated list.
type listValue []string

func (l *listValue) String() string { return "" }

func (l *listValue) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// secretList is a repeatable secret flag: each value, from the command
// line or the environment, is one secret, never split (a token may hold a
// comma).
type secretList []string

func (l *secretList) String() string { return "" }

func (l *secretList) Set(v string) error {
	if v = strings.TrimSpace(v); v == "" {
		return errors.New("empty value")
	}
	*l = append(*l, v)
	return nil
}

// secrets defines a repeatable secret flag and its -file twin (one secret
// per line; blank lines and lines starting with # are ignored), with
// environment mirrors (the variable holds one secret), and returns a
// function that resolves all of them after parsing.
func (fs *flagSet) secrets(name, env, usage string) func() ([]string, error) {
	var values secretList
	var file string
	fs.Var(&values, name, usage+" (repeat the flag for several; $"+env+" holds one)")
	fs.StringVar(&file, name+"-file", "", "read "+name+"s from this file, one per line (# starts a comment line)")
	fs.mirror(name, env)
	fs.mirror(name+"-file", env+"_FILE")
	return func() ([]string, error) {
		out := append([]string(nil), values...)
		if file != "" {
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("read --%s-file: %w", name, err)
			}
			lines := secretLines(b)
			if len(lines) == 0 {
				return nil, usagef("--%s-file %s holds no %s", name, file, name)
			}
			out = append(out, lines...)
		}
		return out, nil
	}
}

// secretLines returns the secrets of a file: one per line, trimmed, blank
// lines and # comment lines left out.
func secretLines(b []byte) []string {
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// secret defines --name and --name-file (with env and env_FILE) for a
// secret, and returns a function that resolves it after parsing. The value
// itself is never printed: not in usage, not in errors. Values are trimmed
// of surrounding whitespace wherever they come from; a file must hold one
// line.
func (fs *flagSet) secret(name, env, usage string) func() (string, error) {
	var value, file string
	fs.StringVar(&value, name, "", usage)
	fs.StringVar(&file, name+"-file", "", "read "+name+" from this file")
	fs.mirror(name, env)
	fs.mirror(name+"-file", env+"_FILE")
	return func() (string, error) {
		if value != "" && file != "" {
			return "", usagef("give --%s or --%s-file, not both", name, name)
		}
		if file == "" {
			return strings.TrimSpace(value), nil
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read --%s-file: %w", name, err)
		}
		v := strings.TrimSpace(string(b))
		if strings.ContainsAny(v, "\r\n") {
			return "", usagef("--%s-file %s holds more than one line; it must hold the %s alone", name, file, name)
		}
		return v, nil
	}
}

// parse parses args, then applies environment variables to the flags the
// command line did not set.
func (fs *flagSet) parse(args []string, getenv func(string) string) error {
	// Flags may come after positional arguments too ("show ID --output
	// json"); "--" ends the flags.
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			fs.positional = append(fs.positional, rest...)
			break
		}
		fs.positional = append(fs.positional, rest[0])
		args = rest[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	names := make([]string, 0, len(fs.env))
	for name := range fs.env {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		env := fs.env[name]
		// Trimmed like a value read from a file: a trailing CR or newline
		// from a Secret or an env file is never part of the value.
		v := strings.TrimSpace(getenv(env))
		if set[name] || v == "" {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return usagef("invalid value in $%s for --%s: %v", env, name, err)
		}
	}
	return nil
}

// positive refuses zero or a negative value in the named flags (ints,
// int64s, floats and durations). In the configuration a zero takes the
// default; on the command line it is a mistake, not a way to say "default".
func (fs *flagSet) positive(names ...string) error {
	for _, name := range names {
		f := fs.Lookup(name)
		if f == nil {
			panic("positive: undefined flag " + name)
		}
		bad := false
		switch v := f.Value.(flag.Getter).Get().(type) {
		case int:
			bad = v <= 0
		case int64:
			bad = v <= 0
		case float64:
			bad = v <= 0
		case time.Duration:
			bad = v <= 0
		default:
			panic("positive: flag " + name + " is not a number or a duration")
		}
		if bad {
			return usagef("--%s must be greater than 0, not %s", name, f.Value.String())
		}
	}
	return nil
}

// usage prints the command's flags with their environment variables.
func (fs *flagSet) usage(cmd *command) func() {
	return func() {
		w := fs.Output()
		args := ""
		if cmd.args != "" {
			args = " " + cmd.args
		}
		fmt.Fprintf(w, "Usage: orchestrator %s%s [flags]\n\n%s\n\nFlags:\n", cmd.name, args, cmd.summary)
		fs.VisitAll(func(f *flag.Flag) {
			line := "  --" + f.Name
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				line += " (default " + f.DefValue + ")"
			}
			if env := fs.env[f.Name]; env != "" {
				line += " [$" + env + "]"
			}
			fmt.Fprintf(w, "%s\n      %s\n", line, f.Usage)
		})
	}
}

// logFlags are on every command.
type logFlags struct {
	level, format string
}

func (l *logFlags) define(fs *flagSet, level string) {
	if level == "" {
		level = "info"
	}
	fs.stringVar(&l.level, "log-level", "ORCHESTRATOR_LOG_LEVEL", level, "log level: debug, info, warn or error")
	fs.stringVar(&l.format, "log-format", "ORCHESTRATOR_LOG_FORMAT", "console", "log format: json or console")
}

func (l *logFlags) logger(w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(l.level)
	if err != nil {
		return nil, usagef("--log-level: %v", err)
	}
	var enc zapcore.Encoder
	switch l.format {
	case "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = logTime
		enc = zapcore.NewJSONEncoder(cfg)
	case "console":
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = logTime
		enc = zapcore.NewConsoleEncoder(cfg)
	default:
		return nil, usagef("--log-format must be json or console, not %q", l.format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), level)), nil
}

var errHelp = flag.ErrHelp

// Every time the commands print, in tables, lines and logs, is RFC 3339 in
// UTC (2026-12-03T12:00:00Z): one form, whatever the machine's zone, that
// sorts as text and pastes into --since. Logs keep the milliseconds.
const (
	timeLayout    = time.RFC3339
	logTimeLayout = "2006-01-02T15:04:05.000Z07:00"
)

// formatTime writes t as every command prints a time.
func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// logTime is the loggers' time encoder: formatTime's form, with milliseconds.
func logTime(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
	enc.AppendString(t.UTC().Format(logTimeLayout))
}

// listenAddress checks a host:port to listen on (the host may be empty,
// port 0 picks one).
func listenAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:8081 or :8081")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errors.New("the port must be a number from 0 to 65535")
	}
	return nil
}

// organizationName checks a TFE organization name: letters, digits, - and _.
func organizationName(s string) error {
	if s == "" || len(s) > 128 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
		return errors.New("not a TFE organization name (letters, digits, - and _)")
	}
	return nil
}

func isUsage(err error) bool {
	var ue *usageError
	return errors.As(err, &ue)
}
