package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
