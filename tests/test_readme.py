"""The README's Python code runs as printed: every ```python block, each in a fresh
namespace (a newcomer copies one block, not the page). Each block checks something: an
assert, or a print whose comment says what it prints, which must be what it prints."""
import ast
import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S) if README.exists() else []
PRINTED = re.compile(r"^print\(.*\)\s+# (.+)$")  # print(...)  # what it prints


def expected_lines(code: str) -> list:
    return [match.group(1).strip() for match in map(PRINTED.match, code.splitlines()) if match]


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i + 1}" for i in range(len(BLOCKS))])
def test_readme_block_runs_and_shows_what_it_says(code):
    asserts = any(isinstance(node, ast.Assert) for node in ast.walk(ast.parse(code)))
    expected = expected_lines(code)
    assert asserts or expected, "a README block that checks nothing: add an assert or a print with its output"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    lines = iter(printed.getvalue().splitlines())
    for line in expected:
        assert any(out.strip() == line for out in lines), f"the README says it prints {line!r}: {printed.getvalue()!r}"
