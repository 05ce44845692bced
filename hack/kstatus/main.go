// Command kstatus prints kstatus's verdict (sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute)
// for each Kubernetes object read from stdin: the health Flux assesses a Kustomization's
// objects by. Input is JSON: one object, a List (as `kubectl get -o json` prints), or a stream
// of either. Output is one JSON line per object:
//
//	{"kind":"Job","namespace":"ns","name":"x","status":"Current","message":"..."}
//
// Ferry's integration tests run it against live Jobs and Apps (tests/integration/test_kstatus.py).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	enc := json.NewEncoder(out)
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading JSON: %w", err)
		}
		// utiljson keeps whole numbers int64, as unstructured accessors expect.
		var obj map[string]interface{}
		if err := utiljson.Unmarshal(raw, &obj); err != nil {
			return fmt.Errorf("reading JSON: %w", err)
		}
		objects := []map[string]interface{}{obj}
		if items, ok := obj["items"].([]interface{}); ok {
			objects = objects[:0]
			for _, item := range items {
				if m, ok := item.(map[string]interface{}); ok {
					objects = append(objects, m)
				}
			}
		}
		for _, o := range objects {
			u := &unstructured.Unstructured{Object: o}
			res, err := status.Compute(u)
			if err != nil {
				return fmt.Errorf("%s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
			v := verdict{u.GetKind(), u.GetNamespace(), u.GetName(), res.Status.String(), res.Message}
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
	}
}
