from __future__ import annotations

from typing import Any

import pytest

from ouroboros.capabilities.skills import SkillStore
from ouroboros.capabilities.skills.starter import starter_dirs

CALLS: dict[str, tuple[Any, Any]] = {
    "csv_to_json": ({"csv": "k,v\nx,1\n", "numbers": True}, [{"k": "x", "v": 1}]),
    "json_path": ({"data": {"a": [{"b": 2}]}, "path": "$.a[0].b"}, [2]),
    "word_stats": ("a b a", {"words": 3, "unique": 2, "chars": 5, "sentences": 0,
                              "avg_word_length": 1.0, "top": [["a", 2], ["b", 1]]}),
    "date_normalise": ("29 Feb 2028", {"date": "2028-02-29", "weekday": "Tuesday"}),
    "unit_convert": ({"value": 1, "from": "mi", "to": "km"}, {"value": 1.609344, "unit": "km"}),
    "checksum": ("abc", {"crc32": 891568578, "crc32_hex": "352441c2", "adler32": 38600999,
                         "length": 3}),
    "sum_ints": ([40, 2], 42),
}


def test_at_least_six_starter_tools_in_three_languages() -> None:
    dirs = starter_dirs()
    assert len(dirs) >= 6
    assert set(CALLS) <= {d.name for d in dirs}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_starter_tool_passes_its_tests_and_runs(store: SkillStore, name: str) -> None:
    (path,) = [d for d in starter_dirs() if d.name == name]
    version = store.add_dir(path)
    assert version.meta["tests"]["failed"] == 0 and version.meta["tests"]["hidden"] >= 1
    given, expected = CALLS[name]
    assert store.run(name, given).output == expected
