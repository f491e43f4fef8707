"""``nudge journeys validate``: one verdict per file, problems as file:line, never a traceback."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest

from decisioning.config import DEFAULT_CONFIG
from journeys import DEFAULT_JOURNEYS_DIR
from serving.cli import main
from serving.journeys_command import validate_journeys
from serving.settings import Settings

HILLSTROM_DECISIONS = Path(__file__).parents[2] / "serving" / "hillstrom_decisions.yaml"

# A good journey named `t`; its `journey:` key is on line `1 + blank lines above it`.
GOOD = """\
journey: t
trigger: {event: signup}
steps:
  - {id: pick, decide: {candidates: [welcome]}}
  - {id: go, send: {}}
"""


def settings(journeys_dir: Path, decision_config: Path = DEFAULT_CONFIG) -> Settings:
    return Settings(journeys_dir=journeys_dir, decision_config=decision_config)


def validate(config: Settings, files: Sequence[Path] = ()) -> tuple[int, list[str]]:
    out = io.StringIO()
    bad = validate_journeys(config, files, out=out)
    return bad, out.getvalue().splitlines()


def test_the_shipped_journeys_are_ok_under_the_default_config() -> None:
    bad, lines = validate(settings(DEFAULT_JOURNEYS_DIR))
    assert bad == 0
    assert [line.split(": ok (")[1].split(",")[0] for line in lines] == [
        "cart_abandonment",
        "onboarding",
        "winback",
    ]


def test_the_shipped_journeys_are_not_for_the_hillstrom_config() -> None:
    bad, lines = validate(settings(DEFAULT_JOURNEYS_DIR, HILLSTROM_DECISIONS))
    assert bad == 3
    assert all(
        "must be a message of the decision configuration (mens, womens)" in line for line in lines
    )


def test_a_name_given_twice_on_the_command_line_is_a_problem_of_the_second_file(
    tmp_path: Path,
) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(GOOD)
    b.write_text("\n" + GOOD)
    bad, lines = validate(settings(tmp_path / "unused"), [a, b])
    assert bad == 1
    assert lines == [
        f"{a}: ok (t, 2 steps)",
        f"{b}:2: journey must be unique; {a} already defines it, got 't'",
    ]


def test_a_name_used_twice_in_the_folder_is_a_problem_of_the_second_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yml").write_text("# the same again\n\n" + GOOD)
    (tmp_path / "notes.txt").write_text("not a journey")
    bad, lines = validate(settings(tmp_path))
    assert bad == 1
    assert lines == [
        f"{tmp_path / 'a.yaml'}: ok (t, 2 steps)",
        f"{tmp_path / 'b.yml'}:3: journey must be unique; {tmp_path / 'a.yaml'} already "
        "defines it, got 't'",
    ]


def test_the_same_file_twice_is_checked_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    bad, lines = validate(settings(tmp_path), [tmp_path / "a.yaml", tmp_path / "a.yaml"])
    assert (bad, lines) == (0, [f"{tmp_path / 'a.yaml'}: ok (t, 2 steps)"])


def test_every_file_gets_its_verdict(tmp_path: Path) -> None:
    files = {
        "long.yaml": GOOD.replace("steps:\n", "steps:\n  - {id: pause, wait: 99999999999w}\n"),
        "late.yaml": GOOD.replace("send: {}", "send: {decision: later}")
        + "  - {id: later, decide: {candidates: [welcome]}}\n",
        "other.yaml": GOOD.replace("journey: t", "journey: u"),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe journey")
    paths = [tmp_path / name for name in [*files, "binary.yaml", "missing.yaml"]] + [tmp_path]
    bad, lines = validate(settings(tmp_path), paths)
    assert bad == 5
    assert lines[:3] == [
        f"{tmp_path / 'long.yaml'}:4: steps[0].wait must be a duration of at most 366 days, "
        "got '99999999999w'",
        f"{tmp_path / 'late.yaml'}:5: steps[1].send.decision must name a decide step above it "
        "(pick; later is steps[2], below it), got 'later'",
        f"{tmp_path / 'other.yaml'}: ok (u, 2 steps)",
    ]
    assert lines[3].startswith(
        f"{tmp_path / 'binary.yaml'}: `path` must be a readable UTF-8 journey file"
    )
    assert lines[4:] == [
        f"{tmp_path / 'missing.yaml'}: no such file",
        f"{tmp_path}: is a folder, not a journey file",
    ]


def test_a_missing_or_empty_folder_is_one_problem(tmp_path: Path) -> None:
    assert validate(settings(tmp_path / "missing")) == (
        1,
        [f"{tmp_path / 'missing'}: is not a folder (journeys_dir, --journeys-dir)"],
    )
    assert validate(settings(tmp_path)) == (
        1,
        [f"{tmp_path}: has no journey files (*.yaml, *.yml)"],
    )


@pytest.mark.parametrize("with_files", [False, True])
def test_the_command_exits_1_for_a_name_used_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], with_files: bool
) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    files = [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")] if with_files else []
    code = main(["journeys", "validate", *files, "--journeys-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out.splitlines()[-1].startswith(f"{tmp_path / 'b.yaml'}:1: journey must be")
    assert captured.err == ""


def test_the_command_exits_1_for_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journeys", "validate", str(tmp_path / "nope.yaml")]) == 1
    assert capsys.readouterr().out == f"{tmp_path / 'nope.yaml'}: no such file\n"
