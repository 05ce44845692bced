"""Upload part sizes and the archive's memory budget: 8 MiB parts (buffers glibc reuses)
until S3's 10,000-part limit needs larger ones, and a budget weight that follows the parts."""

from __future__ import annotations

import pytest

from ferry.clients.s3 import MAX_PARTS, MIN_PART_SIZE, PART_PARALLEL, part_size
from ferry.stager.archive import MemoryBudget

pytestmark = pytest.mark.unit

MiB = 1024 * 1024


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (0, MIN_PART_SIZE),
        (1, MIN_PART_SIZE),
        (1024 * MiB, MIN_PART_SIZE),
        (MIN_PART_SIZE * MAX_PARTS, MIN_PART_SIZE),  # 80 GiB: exactly 10,000 parts
        (MIN_PART_SIZE * MAX_PARTS + 1, 9 * MiB),
        (5 * 1024**4, 525 * MiB),  # S3's largest object
    ],
)
def test_parts_are_8_mib_until_the_part_limit_needs_more(length: int, expected: int) -> None:
    size = part_size(length)
    assert size == expected
    assert size % MiB == 0
    assert -(-length // size) <= MAX_PARTS


def test_the_budget_weighs_a_multipart_file_by_its_parts_in_flight() -> None:
    budget = MemoryBudget(1024 * MiB)
    assert budget.weight(3 * MiB) == 3 * MiB  # one part: the whole file
    assert budget.weight(MIN_PART_SIZE) == MIN_PART_SIZE
    assert budget.weight(1024 * MiB) == MIN_PART_SIZE * (PART_PARALLEL + 1)
    big = 200 * 1024**3
    assert budget.weight(big) == part_size(big) * (PART_PARALLEL + 1)
    assert MemoryBudget(10 * MiB).weight(1024 * MiB) == 10 * MiB  # never more than the whole
