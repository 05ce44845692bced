"""ferrydev: Ferry's development tooling (the local cluster, its images, the benchmarks).

Owns: everything a developer, the tests and the benchmarks run around the operator: the
local cluster's processes (`ferrydev.cluster`), the real node's images (`ferrydev.images`),
a MinIO server of a test's own (`ferrydev.minio`), kubectl (`ferrydev.kubectl`) and the
benchmarks' parts (`ferrydev.bench`). Entry points: `hack/cluster` (`ferrydev.cli`),
`python -m ferrydev.images`, `bench/lifecycle.py`, `bench/staging.py`.

Must not: be imported by the operator (`ferry` never imports `ferrydev`; an import-linter
contract checks it), or be shipped in the operator's image. It works from a source checkout
(installed with `pip install -e`): paths are relative to the repository (`ferrydev.paths`).
"""
