"""The science examples' files agree with each other (tests/e2e/test_science_e2e.py runs them):
the CalculiX deck is make_beam.py's output and its load is the tip force, the HTTP Job pins
in.melt's sha256, and the CalculiX image is one of the images built only when named."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from types import ModuleType

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

BEAM = ROOT / "examples" / "calculix-beam"
MELT = ROOT / "examples" / "lammps-melt"


def make_beam() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_beam", BEAM / "make_beam.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_beam_deck_is_make_beam_output() -> None:
    assert (BEAM / "beam.inp").read_text() == make_beam().deck()


def test_beam_loads_sum_to_the_tip_force_and_the_analytic_deflection() -> None:
    mb = make_beam()
    deck = mb.deck()
    loads = deck.split("*CLOAD\n", 1)[1].split("\n*", 1)[0].splitlines()
    assert {line.split(", ")[1] for line in loads} == {"2"}  # all along y
    assert sum(float(line.split(", ")[2]) for line in loads) == pytest.approx(-mb.P)
    # 21 tip nodes: a 5 x 5 face grid less its 4 face centres.
    assert len(loads) == 21
    # P L^3 / (3 E I) for 100 N on 200 mm of 10 x 10 mm steel.
    assert mb.analytic_tip_deflection() == pytest.approx(100 * 200**3 / (3 * 210000 * 10**4 / 12))
    assert mb.analytic_tip_deflection() == pytest.approx(1.5238, abs=1e-4)


def test_http_job_pins_the_melt_scripts_sha256() -> None:
    jobs = list(yaml.safe_load_all((MELT / "job.yaml").read_text()))
    (http,) = [j for j in jobs if "http" in j["spec"]["inputs"][0]["source"]]
    source = http["spec"]["inputs"][0]["source"]["http"]
    assert source["sha256"] == hashlib.sha256((MELT / "in.melt").read_bytes()).hexdigest()
    assert re.fullmatch(r"http://10\.88\.0\.1:8808/in\.melt", source["url"])


def test_calculix_image_is_built_only_when_named() -> None:
    from ferrydev import images

    assert images.CALCULIX_IMAGE == "localhost/ferry/calculix:2.20"
    assert images.CALCULIX_IMAGE in images.OPTIONAL
    assert images.CALCULIX_IMAGE not in images.ALL
    assert images.CALCULIX_IMAGE in images.BUILDERS


@pytest.mark.parametrize("example", ["lammps-melt", "calculix-beam"])
def test_science_apps_are_valid(example: str) -> None:
    from ferry.api import App
    from ferry.decisions.parameters import validate_app

    app = App.model_validate(yaml.safe_load((ROOT / "examples" / example / "app.yaml").read_text()))
    assert validate_app(app.spec) == []
    assert app.spec.image.startswith("localhost/ferry/")
