// Command kindcheck loads kind cluster configs exactly as `kind create cluster --config`
// does before it creates anything: strict decoding into kind's v1alpha4 Cluster (an unknown
// field is an error), kind's defaults and conversion, then kind's own Cluster.Validate.
//
// Usage: kindcheck FILE...   (exit 0: every file is valid; 1: one is not, with kind's words)
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kind/pkg/internal/apis/config/encoding"
)

func check(path string) error {
	cfg, err := encoding.Load(path)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	fmt.Printf("%s: valid kind config (cluster %q, %d nodes)\n", path, cfg.Name, len(cfg.Nodes))
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kindcheck FILE...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		if err := check(path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}
