// Command orchestrator is the TFE run-trigger orchestrator and its tools.
// See README.md for the commands and their configuration.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// Exit codes of the commands.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitFindings = 3
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal now ends the process at once
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func commands() []*command {
	return []*command{demoCommand(), serveCommand(), cascadesListCommand(), cascadesShowCommand(), cascadesWatchCommand(),
		cascadesCancelCommand(), cascadesRetryCommand(), cascadesApproveCommand(), pauseCommand(false), pauseCommand(true), statusCommand(), auditCommand(), whyCommand(),
		graphCommand(), notificationsInstallCommand(), tfesimCommand(), versionCommand()}
}

// run runs the command that args name and returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || isHelp(args[0]) {
		printUsage(stderr, cmds)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	// A command's name may be two words ("notifications install").
	var cmd *command
	words := 0
	for _, c := range cmds {
		parts := strings.Fields(c.name)
		if len(parts) <= len(args) && slices.Equal(parts, args[:len(parts)]) && len(parts) > words {
			cmd, words = c, len(parts)
		}
	}
	if cmd == nil {
		if group := subcommands(cmds, args[0]); len(group) > 0 {
			// "cascades", "cascades --help": the group's subcommands.
			code := exitUsage
			switch {
			case len(args) > 1 && isHelp(args[1]):
				code = exitOK
			case len(args) > 1:
				fmt.Fprintf(stderr, "orchestrator %s: unknown subcommand %q\n\n", args[0], args[1])
			default:
				fmt.Fprintf(stderr, "orchestrator %s: name a subcommand\n\n", args[0])
			}
			printGroupUsage(stderr, args[0], group)
			return code
		}
		fmt.Fprintf(stderr, "orchestrator: unknown command %q\n\n", strings.Join(args[:min(2, len(args))], " "))
		printUsage(stderr, cmds)
		return exitUsage
	}
	args = args[words-1:]
	fs := newFlagSet(cmd.name, stderr)
	var lf logFlags
	lf.define(fs, cmd.logLevel)
	exec := cmd.setup(fs)
	fs.Usage = fs.usage(cmd)
	if err := fs.parse(args[1:], getenv); err != nil {
		if errors.Is(err, errHelp) {
			return exitOK
		}
		fmt.Fprintf(stderr, "orchestrator %s: %v\n", cmd.name, err)
		return exitUsage
	}
	if want := len(strings.Fields(cmd.args)); len(fs.positional) != want {
		if want == 0 {
			fmt.Fprintf(stderr, "orchestrator %s: unexpected arguments: %v\n", cmd.name, fs.positional)
		} else {
			fmt.Fprintf(stderr, "orchestrator %s: want %s, got %d arguments (see --help)\n", cmd.name, cmd.args, len(fs.positional))
		}
		return exitUsage
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "orchestrator %s: %v\n", cmd.name, err)
		return exitUsage
	}
	defer func() { _ = log.Sync() }()
	err = exec(&runEnv{args: fs.positional, ctx: ctx, log: log.Named(cmd.name), stdout: stdout, stderr: stderr})
	switch {
	case err == nil:
		return exitOK
	case isUsage(err):
		fmt.Fprintf(stderr, "orchestrator %s: %v\n", cmd.name, err)
		return exitUsage
	case errors.Is(err, errFindings):
		return exitFindings
	default:
		fmt.Fprintf(stderr, "orchestrator %s: %v\n", cmd.name, err)
		return exitError
	}
}

// errFindings tells run that a command found problems it has already reported.
var errFindings = errors.New("findings reported")

func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// subcommands returns the commands whose name's first word is group, when
// their names have two words ("cascades list").
func subcommands(cmds []*command, group string) []*command {
	var out []*command
	for _, c := range cmds {
		if first, _, two := strings.Cut(c.name, " "); two && first == group {
			out = append(out, c)
		}
	}
	return out
}

func printGroupUsage(w io.Writer, group string, cmds []*command) {
	fmt.Fprintf(w, "Usage: orchestrator %s <subcommand> [flags]\n\nSubcommands:\n", group)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-28s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintf(w, "\nRun 'orchestrator %s <subcommand> --help' for a subcommand's flags.\n", group)
}

func printUsage(w io.Writer, cmds []*command) {
	fmt.Fprintln(w, "Usage: orchestrator <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-28s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'orchestrator <command> --help' for a command's flags.")
}
