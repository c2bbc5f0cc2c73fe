"""`python -m bench service hostile --all-but`: the phases it adds leave out exactly the cases named (the run
itself is a benchmark, minutes long, and not run here)."""

from __future__ import annotations

import pytest

from bench.service_hostile import all_but_phases

CASES = ["6 big single piece", "10 8 MiB of \\x01", "template: lists of themselves", "template: 16 busy conversations",
         "12 PUT"]  # fmt: skip


def test_each_phase_sends_every_case_but_those_named() -> None:
    phases = all_but_phases(CASES, ["templates=template:", "large=6 big|10 8 MiB", "both=template:|6 big|10 8 MiB"])
    assert phases == {
        "all but templates": {"6 big single piece", "10 8 MiB of \\x01", "12 PUT"},
        "all but large": {"template: lists of themselves", "template: 16 busy conversations", "12 PUT"},
        "all but both": {"12 PUT"},
    }


@pytest.mark.parametrize("spec", ["templates", "templates=", "=template:", "typo=templat e:"])
def test_a_spec_that_leaves_nothing_out_is_refused(spec: str) -> None:
    with pytest.raises(SystemExit, match="--all-but"):
        all_but_phases(CASES, [spec])
