package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestExitCodePassesThrough(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "logs", "app.log")
	var out, errOut bytes.Buffer
	code := run([]string{"--log", log, "--", "sh", "-c", "echo out; echo err >&2; exit 3"}, &out, &errOut)
	if code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	if out.String() != "out\n" || errOut.String() != "err\n" {
		t.Fatalf("streams: %q %q", out.String(), errOut.String())
	}
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "out\n") || !strings.Contains(string(data), "err\n") {
		t.Fatalf("log file %q lacks both streams", data)
	}
}

func TestSignalledChildGives128PlusSignal(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"--", "sh", "-c", "kill -TERM $$"}, &out, &errOut)
	if code != 128+15 {
		t.Fatalf("exit code %d, want 143", code)
	}
}

func TestMissingCommandIs127(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"--", "/nonexistent/binary"}, &out, &errOut)
	if code != 127 {
		t.Fatalf("exit code %d, want 127 (%s)", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "cannot run /nonexistent/binary") {
		t.Fatalf("message %q", errOut.String())
	}
}

func TestBadUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--log"}, &out, &errOut); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
	if code := run([]string{"--"}, &out, &errOut); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
}

// A shell script's child must not keep the launcher (the container's PID 1) alive after a
// SIGTERM: the signal goes to the app's whole process group, so `sleep` ends with `sh`.
func TestTerminationReachesTheAppsChildren(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	done := make(chan int, 1)
	start := time.Now()
	go func() {
		var out, errOut bytes.Buffer
		done <- run([]string{"--log", log, "--", "sh", "-c", "echo started; sleep 30; echo woke"}, &out, &errOut)
	}()
	for {
		if data, _ := os.ReadFile(log); strings.Contains(string(data), "started") {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the app did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// run() has registered its handler before starting the app, so this reaches it, not us.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 128+15 {
			t.Fatalf("exit code %d, want 143", code)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("took %s", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the launcher still waits for the app's child after SIGTERM")
	}
}

// Something the app leaves running in the background must not hold the launcher once the
// app itself has exited.
func TestBackgroundChildDoesNotHoldTheExit(t *testing.T) {
	saved := outputGrace
	outputGrace = 200 * time.Millisecond
	defer func() { outputGrace = saved }()
	var out, errOut bytes.Buffer
	start := time.Now()
	code := run([]string{"--", "sh", "-c", "sleep 30 & echo bye"}, &out, &errOut)
	if code != 0 || out.String() != "bye\n" {
		t.Fatalf("exit code %d, output %q", code, out.String())
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("took %s", took)
	}
}
