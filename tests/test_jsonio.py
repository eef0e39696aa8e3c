"""read_json_file: a JSON file the user names, or one line saying what is wrong and how to fix it."""

from __future__ import annotations

from pathlib import Path

import pytest

from accelkit.errors import InputError
from accelkit.jsonio import read_json_file


def test_reads_a_json_file(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text('{"a": [1, 2]}')
    assert read_json_file(p, "", "fix-a", "fix-b") == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, r"^cannot read the thing .*r\.json \(.*\); fix-a$"),
        ("{nope", r"^.*r\.json is not valid JSON \(line 1: .*\); fix-b$"),
        (
            "[" * 100_000 + "]" * 100_000,
            r"^.*r\.json is not valid JSON \(nested deeper.*\); fix-b$",
        ),
        (b"\xff\xfe{", r"^cannot read the thing .*; fix-a$"),
    ],
)
def test_one_line_errors(tmp_path: Path, text: str | bytes | None, message: str) -> None:
    p = tmp_path / "r.json"
    if isinstance(text, bytes):
        p.write_bytes(text)
    elif text is not None:
        p.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        read_json_file(p, "the thing ", "fix-a", "fix-b")
    assert "\n" not in str(err.value)
