package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func writeHostfile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hostfile")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadHostsTakesEachImplementationsForm(t *testing.T) {
	path := writeHostfile(t, "# workers\nw-0.svc slots=2\n\nw-1.svc:4\nw-0.svc slots=2\n  w-2.svc  \n")
	hosts, err := readHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"w-0.svc", "w-1.svc", "w-2.svc"}; !reflect.DeepEqual(hosts, want) {
		t.Fatalf("hosts %q, want %q", hosts, want)
	}
}

// freePort is a loopback port nothing listens on (yet).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func fastWait(port int, timeout time.Duration) hostWait {
	return hostWait{
		timeout:  timeout,
		interval: 50 * time.Millisecond,
		probe:    time.Second,
		port:     func(string) int { return port },
	}
}

// The app starts only once the worker's port listens: here 600 ms after the launcher began.
func TestTheAppWaitsUntilTheWorkerListens(t *testing.T) {
	port := freePort(t)
	path := writeHostfile(t, "127.0.0.1 slots=1\n")
	opened := make(chan time.Time, 1)
	go func() {
		time.Sleep(600 * time.Millisecond)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			opened <- time.Time{}
			return
		}
		opened <- time.Now()
		time.Sleep(5 * time.Second)
		l.Close()
	}()
	marker := filepath.Join(t.TempDir(), "started")
	var out, errOut bytes.Buffer
	code := runWith([]string{"--wait-hosts", path, "--", "sh", "-c", "date +%s%N > " + marker}, &out, &errOut, fastWait(port, 30*time.Second))
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, errOut.String())
	}
	listening := <-opened
	if listening.IsZero() {
		t.Fatal("could not listen")
	}
	info, err := os.Stat(marker)
	if err != nil {
		t.Fatal(err)
	}
	if info.ModTime().Before(listening.Add(-10 * time.Millisecond)) {
		t.Fatalf("the app started at %s, before the worker listened at %s", info.ModTime(), listening)
	}
	if !strings.Contains(errOut.String(), "waiting for 127.0.0.1 (port "+strconv.Itoa(port)+")") ||
		!strings.Contains(errOut.String(), "127.0.0.1 is up") {
		t.Fatalf("stderr %q does not say what it waited for", errOut.String())
	}
}

// A worker that never comes up is named, and the app still runs (mpirun reports in its words).
func TestAWorkerThatNeverListensIsNamedAndTheAppRunsAnyway(t *testing.T) {
	port := freePort(t)
	path := writeHostfile(t, "127.0.0.1:1\n")
	var out, errOut bytes.Buffer
	code := runWith([]string{"--wait-hosts", path, "--", "sh", "-c", "exit 5"}, &out, &errOut, fastWait(port, 300*time.Millisecond))
	if code != 5 {
		t.Fatalf("exit code %d, want the app's 5: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "127.0.0.1 not reachable after 300ms") {
		t.Fatalf("stderr %q does not name the host", errOut.String())
	}
}

func TestTheLaunchersOwnHostIsNotWaitedFor(t *testing.T) {
	self, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	path := writeHostfile(t, self+".workers.ns.svc slots=1\n")
	var out, errOut bytes.Buffer
	start := time.Now()
	code := runWith([]string{"--wait-hosts", path, "--", "true"}, &out, &errOut, fastWait(freePort(t), 5*time.Second))
	if code != 0 || time.Since(start) > 2*time.Second {
		t.Fatalf("exit code %d after %s: %s", code, time.Since(start), errOut.String())
	}
}

func TestAMissingHostfileIsSaid(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runWith([]string{"--wait-hosts", "/nonexistent/hostfile", "--", "true"}, &out, &errOut, fastWait(0, time.Second))
	if code != 0 || !strings.Contains(errOut.String(), "cannot read the hostfile") {
		t.Fatalf("exit code %d, stderr %q", code, errOut.String())
	}
}
