// kindcheck: validates kind-config.yaml with kind's own loader and validation.
//
// The module path sits under sigs.k8s.io/kind/pkg on purpose: Go's internal-package rule is
// by import path in module mode, and kind's loader (strict decoding, v1alpha4 defaults and
// conversion) and its Cluster.Validate live in kind's internal packages. Nothing else uses
// this path; it is never published.
module sigs.k8s.io/kind/pkg/ferrykindcheck

go 1.23

require sigs.k8s.io/kind v0.30.0

require (
	github.com/pkg/errors v0.9.1 // indirect
	go.yaml.in/yaml/v3 v3.0.4 // indirect
)
