"""``nudge train``, ``promote``, ``rollback`` and ``models list`` through the real command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from lifecycle_support import build_state, clone_state

from serving.cli import main
from serving.settings import Settings
from training.lifecycle import registry_for
from training.promotion import history


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return build_state(tmp_path_factory.mktemp("commands"))


@pytest.fixture
def settings(base: Settings, tmp_path: Path) -> Settings:
    return clone_state(base, tmp_path)


def run(capsys: pytest.CaptureFixture[str], settings: Settings, *argv: str) -> tuple[int, str, str]:
    code = main([*argv, "--state-dir", str(settings.state_dir)])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_promote_list_and_rollback(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, settings, "train")
    assert (code, err) == (0, "")
    for line in (
        "[1/3] Training set: Feast point-in-time features",
        "12,000 decisions × 7 features from propensity_v1, snapshot ",
        "[2/3] Fit: nudge-propensity",
        "ArmPropensityModel (arm) on ",
        "[3/3] Log: MLflow run, plots and model → registry",
        "nudge-propensity v1 @challenger,champion (run ",
        "auc_mens_email",
        "qini_womens_email",
    ):
        assert line in out

    code, out, _ = run(capsys, settings, "promote")
    assert code == 0
    assert "NOTHING TO DO: challenger v1 already is the champion" in out

    code, out, _ = run(capsys, settings, "train", "--learner", "calibrated", "--seed", "2")
    assert code == 0
    assert "CalibratedPropensityModel (calibrated)" in out
    assert "nudge-propensity v2 @challenger (run " in out

    code, out, _ = run(capsys, settings, "promote", "--dry-run")
    # A refusal, dry or not, is exit 1 (a script can tell it from a promotion).
    assert code == (1 if "WOULD REFUSE" in out else 0)
    assert "[2/2] Evaluate nudge-propensity champion and challenger by DR, and decide" in out
    assert "held-out customers, reward visit, logging policy" in out
    assert "champion          v1" in out
    assert "challenger        v2" in out
    assert "WOULD " in out
    assert "dry run: no alias moved, nothing recorded" in out
    assert history(settings, "propensity") == []

    code, out, _ = run(capsys, settings, "promote", "--force")
    assert code == 0
    assert "PROMOTED: forced: " in out or "PROMOTED: challenger v2" in out
    assert registry_for(settings).resolve("nudge-propensity", "champion").version == "2"

    code, out, _ = run(capsys, settings, "models", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["model", "version", "aliases", "learner"]
    assert lines[1].split()[:4] == ["nudge-propensity", "1", "-", "arm"]
    assert lines[2].split()[:4] == ["nudge-propensity", "2", "challenger,champion", "calibrated"]
    assert "promote" in lines[2]
    assert "auc 0." in lines[2]
    assert "qini mens_email" in lines[2]

    code, out, _ = run(capsys, settings, "rollback")
    assert code == 0
    assert "ROLLED BACK: rolled back from v2 to v1" in out
    assert registry_for(settings).resolve("nudge-propensity", "champion").version == "1"


def test_train_uplift_as_of(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, settings, "train", "--model", "uplift", "--learner", "t", "--as-of", "2008-03-22"
    )
    assert code == 0
    assert "as known at 2008-03-22T00:00:00+00:00" in out
    assert "left out " in out
    assert " outcomes" in out
    assert "nudge-uplift v1 @challenger,champion" in out
    code, out, _ = run(capsys, settings, "models", "list", "--model", "uplift")
    assert code == 0
    assert "nudge-uplift" in out
    assert "nudge-propensity" not in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--as-of", "yesterday"], "nudge: `as_of` must be an ISO date or date-time"),
        (["train", "--learner", "dr"], "nudge: `learner` must be one of ['arm', 'calibrated']"),
        (
            ["train", "--outcome", "spend"],
            "nudge: `outcome` must be a 0/1 outcome ['visit', 'conversion'] for nudge-propensity",
        ),
        (["promote", "--margin", "-0.1"], "nudge: `margin` must be a number >= 0, got -0.1"),
        (["rollback"], "nudge: model 'nudge-propensity@champion' not found"),
    ],
)
def test_bad_input_is_a_clear_error(
    settings: Settings, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, settings, *argv)
    assert code == 2
    assert message in err


def test_unknown_choices_are_refused_by_the_parser(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(capsys, settings, "train", "--model", "churn")
    assert exit_info.value.code == 2
    assert "invalid choice: 'churn'" in capsys.readouterr().err


def test_an_empty_state_folder_says_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = Settings(state_dir=tmp_path / "nothing")
    code, _, err = run(capsys, empty, "train")
    assert code == 2
    assert "no decision log in" in err
    assert "run `nudge demo` first" in err
    for argv in (["promote"], ["rollback"], ["models", "list"]):
        code, _, err = run(capsys, empty, *argv)
        assert code == 2
        assert "no model registry at" in err
        assert "`nudge train`" in err
    assert not (tmp_path / "nothing" / "mlflow.db").exists()
