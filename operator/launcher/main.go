// Command ferry-launch runs a Job's app inside the app's own image: it starts the command,
// copies its stdout and stderr both to the container's streams (for `kubectl logs`) and to a
// log file in the workspace (archived as logs/app.log), forwards termination signals to the
// app's process group, and
// exits with the app's exit code (128+signal when the app was killed by a signal). With
// --wait-hosts (an MPI launcher) it first waits for the hosts of the MPI hostfile (hosts.go).
//
// It is a static binary with no dependencies so it runs in any image; the run pod's setup
// init container copies it from Ferry's tools image into a shared emptyDir.
//
// Usage: ferry-launch [--log PATH] [--wait-hosts HOSTFILE] -- COMMAND [ARG...]
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// outputGrace is how long the launcher keeps copying output after the app has exited.
var outputGrace = 5 * time.Second

// lockedWriter serialises writes so stdout and stderr lines do not interleave mid-write.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type options struct {
	logPath  string
	hostfile string
	command  []string
}

func parseArgs(args []string) (options, error) {
	var opts options
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--log", "--wait-hosts":
			if i+1 >= len(args) {
				return opts, fmt.Errorf("%s needs a path", args[i])
			}
			if args[i] == "--log" {
				opts.logPath = args[i+1]
			} else {
				opts.hostfile = args[i+1]
			}
			i++
		case "--":
			opts.command = args[i+1:]
			if len(opts.command) == 0 {
				return opts, errors.New("no command after --")
			}
			return opts, nil
		default:
			return opts, fmt.Errorf("unknown argument %q", args[i])
		}
	}
	return opts, errors.New("usage: ferry-launch [--log PATH] [--wait-hosts HOSTFILE] -- COMMAND [ARG...]")
}

func run(args []string, stdout, stderr io.Writer) int {
	return runWith(args, stdout, stderr, defaultHostWait)
}

func runWith(args []string, stdout, stderr io.Writer, wait hostWait) int {
	opts, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "ferry-launch: %v\n", err)
		return 2
	}
	logPath, command := opts.logPath, opts.command
	var logFile io.Writer = io.Discard
	if logPath != "" {
		if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
			fmt.Fprintf(stderr, "ferry-launch: cannot create %s: %v\n", filepath.Dir(logPath), err)
			return 2
		}
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(stderr, "ferry-launch: cannot open %s: %v\n", logPath, err)
			return 2
		}
		defer f.Close()
		logFile = f
	}
	mu := &sync.Mutex{}
	errOut := lockedWriter{mu, io.MultiWriter(stderr, logFile)}
	if opts.hostfile != "" {
		if err := waitHosts(opts.hostfile, wait, errOut); err != nil {
			// The app still runs: mpirun then says what it cannot reach, in its own words.
			fmt.Fprintf(errOut, "ferry-launch: %v; starting the app anyway\n", err)
		}
	}
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin = os.Stdin
	cmd.Stdout = lockedWriter{mu, io.MultiWriter(stdout, logFile)}
	cmd.Stderr = errOut
	// The app gets its own process group, and termination signals go to the whole group: a
	// shell script's children (`sh -c "...; sleep 600"`) stop with it instead of keeping the
	// output pipes open, which would hold the pod until the kubelet's SIGKILL (30 s later).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Once the app has exited, stop waiting for its output after this long even if something
	// it left behind still holds the pipes (PID 1 exiting then ends them all).
	cmd.WaitDelay = outputGrace
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	if err := cmd.Start(); err != nil {
		signal.Stop(signals)
		fmt.Fprintf(stderr, "ferry-launch: cannot run %s: %v\n", command[0], err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 127
		}
		return 126
	}
	go func() {
		for s := range signals {
			sig, ok := s.(syscall.Signal)
			if !ok || syscall.Kill(-cmd.Process.Pid, sig) != nil {
				_ = cmd.Process.Signal(s)
			}
		}
	}()
	err = cmd.Wait()
	signal.Stop(signals)
	close(signals)
	if errors.Is(err, exec.ErrWaitDelay) {
		// The app exited cleanly; only something it left behind still held the output.
		err = nil
	}
	if err == nil {
		return 0
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		if status, ok := exitErr.Sys().(syscall.WaitStatus); ok && status.Signaled() {
			return 128 + int(status.Signal())
		}
		return exitErr.ExitCode()
	}
	fmt.Fprintf(stderr, "ferry-launch: %v\n", err)
	return 1
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
