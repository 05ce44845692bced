"""Which pod changes are looked at at once and which are progress batched together."""

from __future__ import annotations

import dataclasses

import pytest

from ferry.decisions.observation import ContainerView, PodView, prompt_change

pytestmark = pytest.mark.unit

BASE = PodView(
    name="j-1",
    attempt=1,
    role="run",
    phase="Pending",
    init=(ContainerView("setup"), ContainerView("stage-data")),
    main=ContainerView("app"),
)


def _with(**changes: object) -> PodView:
    return dataclasses.replace(BASE, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("after", "prompt"),
    [
        (_with(scheduled=True), False),
        (_with(phase="Running", main=ContainerView("app", state="running")), False),
        (_with(main=ContainerView("app", state="waiting", reason="ImagePullBackOff")), False),
        (_with(init=(ContainerView("setup", state="terminated", exit_code=0),)), False),
        (_with(init=(ContainerView("setup", state="terminated", exit_code=3),)), True),
        (_with(main=ContainerView("app", state="terminated", exit_code=0)), True),
        (_with(phase="Succeeded"), True),
        (_with(phase="Failed"), True),
        (_with(deleting=True), True),
        (_with(disruption="EvictionByEvictionAPI"), True),
    ],
)
def test_prompt_changes(after: PodView, prompt: bool) -> None:
    assert prompt_change(BASE, after) is prompt


def test_a_pod_that_comes_or_goes_is_prompt() -> None:
    assert prompt_change(None, BASE)
    assert prompt_change(BASE, None)


def test_no_change_is_not_prompt() -> None:
    assert not prompt_change(BASE, dataclasses.replace(BASE))
