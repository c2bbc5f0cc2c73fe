"""The suite's two lanes: tests under the process directories run one after another on one xdist worker.

tests/conftest.py marks them ``xdist_group("processes")`` (support/process_dirs.py names the directories);
xdist's ``--dist loadgroup`` turns the mark into a ``@processes`` suffix of the test's id, and schedules by
that suffix. When the mark is added after xdist looked (hook order) or the id is not renamed (xdist 3.8 on
pytest 9), nothing is grouped and nothing says so: the servers of two tests compete for the two cores, and
module fixtures (the deploy test's image) are built once per worker. A few other files are groups of their
own (``pytestmark = pytest.mark.xdist_group(...)``), for the same reason: their module fixtures cost seconds.
"""

from __future__ import annotations

from support.process_dirs import is_process_test


def test_tests_under_the_process_directories_are_in_one_group_and_no_others(request) -> None:
    items = request.session.items
    grouped = [item for item in items if is_process_test(item.path)]
    others = [item for item in items if not is_process_test(item.path)]
    assert request.node in grouped  # this test lives in tests/server, so the check below always has one
    for item in grouped:
        assert [mark.args for mark in item.iter_markers("xdist_group")] == [("processes",)], item.nodeid
    for item in others:  # a few files are a group of their own (their module fixtures built once), never this one
        assert ("processes",) not in [mark.args for mark in item.iter_markers("xdist_group")], item.nodeid
    if request.config.getoption("loadgroup", default=False):  # on an xdist worker of `--dist loadgroup`
        assert all(item.nodeid.endswith("@processes") for item in grouped), [i.nodeid for i in grouped][:3]
        assert not any(item.nodeid.endswith("@processes") for item in others)
        for item in others:
            for (group,) in [mark.args for mark in item.iter_markers("xdist_group")]:
                assert item.nodeid.endswith(f"@{group}"), item.nodeid
    for item in others:  # (when collected) the costliest of those files keep their group
        if item.path.name in {"test_long_inputs.py", "test_gguf_import.py"}:
            assert list(item.iter_markers("xdist_group")), item.nodeid
