"""Every docstring example in the server distribution and the API package runs and gives what it shows,
with no example skipped (docs that cannot rot). Examples that need a running system are written as plain
indented code, not as `>>>` sessions."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tokend
import tokend_api


def _modules() -> list[str]:
    names = []
    for package in (tokend, tokend_api):
        names.append(package.__name__)
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.endswith(("__main__", "_pb2", "_pb2_grpc")):
                names.append(module.name)
    return sorted(names)


MODULES = _modules()


def test_no_example_is_skipped():
    skipped = [name for name in MODULES if "doctest: +SKIP" in (importlib.util.find_spec(name).loader.get_source(name) or "")]
    assert not skipped, f"examples marked +SKIP in {skipped}: make them run, or write them as plain code"


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name):
    result = doctest.testmod(importlib.import_module(module_name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
