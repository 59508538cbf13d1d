"""The README's code: every Python block runs as it stands, each in a fresh namespace;
the marked shell block runs as it stands, and every ``mtlrec`` command the README shows
is one the parser accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mtlrec.cli import build_parser, main

README = Path(__file__).resolve().parents[1] / "README.md"
#: a fenced block right after this comment is run by test_marked_blocks_run_verbatim
MARKER = "<!-- readme-test: run -->"


def marked_blocks(text: str) -> list[list[str]]:
    """The command lines of each fenced block that follows :data:`MARKER`."""
    pattern = re.escape(MARKER) + r"\s*\n```[a-z]*\n(.*?)\n```"
    return [
        [line for line in block.splitlines() if line.strip()]
        for block in re.findall(pattern, text, flags=re.DOTALL)
    ]


def readme_commands(text: str) -> list[list[str]]:
    """Every ``mtlrec ...`` command in the README's code (fenced lines, indented lines,
    inline code; ``torchrun ... -m mtlrec ...`` too), split like a shell would, comments
    dropped, pipes and ``&&`` split."""
    snippets = re.findall(r"```[a-z]*\n(.*?)\n```", text, flags=re.DOTALL)
    snippets += [line for line in text.splitlines() if line.startswith("    ")]
    snippets += re.findall(r"`(mtlrec [^`]+)`", text)
    commands = []
    for snippet in snippets:
        for line in snippet.splitlines():
            for part in re.split(r"\|\||&&|\|", line):
                words = shlex.split(part, comments=True)
                if words[:1] == ["torchrun"] and "-m" in words:  # torchrun ... -m mtlrec ARGS
                    words = words[words.index("-m") + 1 :]
                if words[:1] == ["mtlrec"] and words[1:2] != ["COMMAND"]:
                    commands.append(words)
    return commands


def python_blocks(text: str) -> list[str]:
    """The README's fenced Python blocks, in order."""
    return re.findall(r"```python\n(.*?)\n```", text, flags=re.DOTALL)


BLOCKS = python_blocks(README.read_text())


@pytest.mark.parametrize("number", range(len(BLOCKS)), ids=lambda n: f"block{n}")
def test_every_python_block_runs_on_its_own(number, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files it saves land in an empty folder
    source = BLOCKS[number]
    exec(compile(source, f"README.md python block {number}", "exec"), {"__name__": "__readme__"})


def test_marked_blocks_run_verbatim(tmp_path: Path, monkeypatch, capsys) -> None:
    blocks = marked_blocks(README.read_text())
    assert blocks, f"README.md has no block marked {MARKER}"
    monkeypatch.chdir(tmp_path)  # an empty folder, as the README says
    for block in blocks:
        for line in block:
            argv = shlex.split(line, comments=True)
            assert argv[0] == "mtlrec", f"the README block may hold mtlrec commands only: {line}"
            code = main(argv[1:])
            out, err = capsys.readouterr()
            assert code == 0, f"{line}\n{out}\n{err}"
    assert (tmp_path / "predictions.csv").read_text().startswith("age,income,marital")
    assert (tmp_path / "runs" / "adult_mmoe" / "gates.png").is_file()


def test_every_readme_command_parses() -> None:
    commands = readme_commands(README.read_text())
    assert ["mtlrec", "benchmark", "adult", "--seeds", "3"] in commands  # the main job
    parser = build_parser()
    for words in commands:
        try:
            parser.parse_args(words[1:])
        except SystemExit:  # pragma: no cover - argparse printed why
            pytest.fail(f"README command does not parse: {shlex.join(words)}")
