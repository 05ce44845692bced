// Waiting for an MPI job's hosts: `--wait-hosts FILE` holds the app (mpirun) until every host
// of the MPI hostfile resolves and, when ssh names a port for it, accepts a TCP connection.
//
// The MPI Operator starts the launcher once the workers are Ready (WaitForWorkersReady), but a
// worker is Ready as soon as its container has started, before sshd listens, and an MPIJob
// resumed by Kueue starts its launcher and workers together. mpirun reaching a worker whose
// sshd is not up yet exits 255 at once; waiting here turns that race into a short delay.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// hostWait configures the wait: how long in all, how often to retry, how long one probe may
// take, and how to find the port ssh would use for a host (0: resolve only).
type hostWait struct {
	timeout  time.Duration
	interval time.Duration
	probe    time.Duration
	port     func(host string) int
}

var defaultHostWait = hostWait{
	timeout:  5 * time.Minute,
	interval: 500 * time.Millisecond,
	probe:    2 * time.Second,
	port:     sshPort,
}

// readHosts returns the hosts of an MPI hostfile, in order and once each: the first word of
// every line that is not blank or a comment, without OpenMPI's ` slots=N` or MPICH and Intel
// MPI's `:N`.
func readHosts(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hosts []string
	seen := map[string]bool{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		host, _, _ := strings.Cut(fields[0], ":")
		if host != "" && !seen[host] {
			seen[host] = true
			hosts = append(hosts, host)
		}
	}
	return hosts, scanner.Err()
}

// sshPort is the port `ssh` would connect to for host (its configuration, as `ssh -G` prints
// it), or 0 when there is no ssh client or it names none.
func sshPort(host string) int {
	out, err := exec.Command("ssh", "-G", host).Output()
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "port "); ok {
			if port, err := strconv.Atoi(strings.TrimSpace(rest)); err == nil {
				return port
			}
		}
	}
	return 0
}

// reach resolves host and, with a port, opens and closes a TCP connection to it.
func reach(ctx context.Context, host string, port int, probe time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, probe)
	defer cancel()
	if port == 0 {
		_, err := net.DefaultResolver.LookupHost(ctx, host)
		return err
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return conn.Close()
}

// waitHosts waits until every host of the hostfile at path is reachable, saying on stderr
// which one it waits for. It returns an error naming the host still unreachable when the
// timeout passes, and nil once all are reachable.
func waitHosts(path string, w hostWait, stderr io.Writer) error {
	hosts, err := readHosts(path)
	if err != nil {
		return fmt.Errorf("cannot read the hostfile: %w", err)
	}
	self, _ := os.Hostname()
	deadline := time.Now().Add(w.timeout)
	for _, host := range hosts {
		if self != "" && strings.SplitN(host, ".", 2)[0] == self {
			continue
		}
		port := w.port(host)
		said := false
		for {
			err := reach(context.Background(), host, port, w.probe)
			if err == nil {
				if said {
					fmt.Fprintf(stderr, "ferry-launch: %s is up\n", host)
				}
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not reachable after %s: %v", host, w.timeout, err)
			}
			if !said {
				fmt.Fprintf(stderr, "ferry-launch: waiting for %s (port %d): %v\n", host, port, err)
				said = true
			}
			time.Sleep(w.interval)
		}
	}
	return nil
}
