# Ferry — the two commands a user needs are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PY := .venv/bin/python
export PATH := $(HOME)/.cache/ferry/bin:$(PATH)

.PHONY: help deps venv tools image crds check-crds lint typecheck layers launcher unit integration e2e test demo demo-down clean

help:
	@echo "make demo   - local cluster + MinIO + operator, run the hello example, show its timeline"
	@echo "make test   - install what is missing, then lint, type-check, layer check and every test"
	@echo "make image  - the operator/tools image as build/image/ferry-tools-0.1.0.{oci,docker}.tar (root)"
	@echo "make crds   - regenerate crds/, charts/ferry/crds/, values.schema.json's operator section and the chart README's values table"

deps:
	hack/install-deps.sh

crds:
	$(PY) -m ferry.crdgen

check-crds:
	$(PY) -m ferry.crdgen --check

# hack/cluster (Python without a .py suffix) is included by pyproject.toml's extend-include.
lint:
	.venv/bin/ruff check operator tests hack bench
	.venv/bin/ruff format --check operator tests hack bench

typecheck:
	.venv/bin/mypy

layers:
	.venv/bin/lint-imports

# The operator/tools image for other clusters (docs/install.md), built without a container
# engine (root: debootstrap, chroot) as an OCI archive and a docker-archive. The Containerfile
# builds the same image with one.
IMAGE_OUT := build/image
image:
	$(PY) -m ferrydev.images export --out $(IMAGE_OUT) localhost/ferry/tools:0.1.0

# The launcher that runs inside app containers (Go, static).
launcher:
	cd operator/launcher && gofmt -l . | (! grep .) && go vet ./... && go test ./...
	cd operator/launcher && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o ../../build/ferry-launch .

unit:
	$(PY) -m pytest -m unit -q

integration:
	$(PY) -m pytest -m integration -q

e2e:
	$(PY) -m pytest -m e2e -q

# The README's test command: everything, nothing skipped.
test: deps check-crds lint typecheck layers launcher
	$(PY) -m pytest -q -p no:cacheprovider

demo: deps
	hack/demo.sh

demo-down:
	hack/demo.sh down

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache .cluster
