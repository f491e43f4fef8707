"""The notebooks run top to bottom on a demo's state, and are stored clean.

Each notebook runs in a real kernel from this venv (nbclient), started in
``notebooks/`` as Jupyter would start it, on its own copy of the sample demo's
state, named by ``NUDGE_STATE_DIR`` as a user would name theirs. Each notebook
ends with a ``summary`` dict of what it found; the test appends one cell that
prints it as JSON, and checks the figures, not just that no cell raised.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from demo_support import E2E_SAMPLE, DemoRun
from IPython.core.inputtransformer2 import TransformerManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_explore_features", "02_retrain_and_compare", "03_offline_policy_evaluation")
# Per notebook, generous against a 2-core box shared with other jobs; a cell that hangs fails.
CELL_TIMEOUT_S = 300
# The bound of tests/training/test_open_bandit_ope.py: the same estimates, so the same bound.
OBD_RELATIVE_ERROR_BOUND = 0.15
# Cells as the kernel runs them: magics (``%matplotlib inline``) become Python.
PYTHON = TransformerManager()
PRINT_SUMMARY = "import json\nprint(json.dumps(summary, default=str))"


def read_notebook(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


@pytest.mark.parametrize("name", NAMES)
def test_stored_without_outputs(name: str) -> None:
    notebook = read_notebook(name)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    dirty = [i for i, cell in enumerate(code) if cell.outputs or cell.execution_count is not None]
    assert not dirty, f"{name}: code cells {dirty} carry outputs; clear them before committing"
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", NAMES)
def test_cells_only_call_the_library(name: str) -> None:
    # Logic belongs in training/ and features/, where it is tested; a notebook glues and plots.
    defined = [
        f"cell {i}: {type(node).__name__} {getattr(node, 'name', '')}"
        for i, cell in enumerate(read_notebook(name).cells)
        if cell.cell_type == "code"
        for node in ast.walk(ast.parse(PYTHON.transform_cell(cell.source)))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    ]
    assert not defined, defined


def test_the_readme_names_every_notebook() -> None:
    readme = (NOTEBOOKS / "README.md").read_text()
    stored = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
    assert stored == sorted(NAMES), "a new notebook goes into NAMES, so that CI runs it"
    for name in NAMES:
        assert f"{name}.ipynb" in readme


def run_notebook(name: str, demo_run: DemoRun, root: Path) -> dict[str, Any]:
    """Execute ``name`` on a copy of the demo's state: its ``summary``, plus ``_plots`` rendered."""
    state_dir = root / "state"
    shutil.copytree(demo_run.settings.state_dir, state_dir)
    env = {
        **os.environ,
        "NUDGE_STATE_DIR": str(state_dir),
        "NUDGE_REPORTS_DIR": str(root / "reports"),
        "OMP_NUM_THREADS": "1",
        # What Jupyter uses, whatever the environment says: plots become PNG outputs.
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    notebook = read_notebook(name)
    notebook.cells.append(nbformat.v4.new_code_cell(PRINT_SUMMARY))
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    started = time.perf_counter()
    client.execute(env=env)
    elapsed = time.perf_counter() - started
    printed = "".join(
        output.get("text", "")
        for output in notebook.cells[-1].outputs
        if output.output_type == "stream" and output.name == "stdout"
    )
    summary: dict[str, Any] = json.loads(printed)
    print(f"\n{name} ran in {elapsed:.1f} s")
    # Every plot cell rendered: a broken plot raises, an empty one would pass unseen.
    plots = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]
    summary["_plots"] = len(plots)
    return summary


@pytest.mark.e2e
@pytest.mark.slow
def test_01_explore_features(demo_run: DemoRun, tmp_path: Path) -> None:
    summary = run_notebook("01_explore_features", demo_run, tmp_path)
    assert summary["_plots"] == 1

    assert summary["training_rows"] == summary["decisions"] == E2E_SAMPLE
    # Buyers have a second snapshot after the campaign; no decision may see it.
    assert summary["later_snapshots"] > 0
    assert summary["leaked_rows"] == 0
    # As known at a past moment: only decisions whose outcome was known then, and none of
    # the profile rows created later.
    assert 0 < summary["as_of_rows"] < summary["training_rows"]
    assert summary["as_of_latest_decision"] < summary["as_of"]
    assert summary["as_of_ignored"]["profiles"] == summary["later_snapshots"]
    # Randomised arms: every feature alike in each e-mail arm and the control.
    assert summary["max_psi_between_arms"] < 0.1
    assert sum(rate["n"] for rate in summary["visit_rate"].values()) == E2E_SAMPLE
    # The Mens e-mail really added visits in this experiment (as the demo's report says).
    assert summary["lift_vs_no_email"]["mens_email"]["ci95"][0] > 0


@pytest.mark.e2e
@pytest.mark.slow
def test_02_retrain_and_compare(demo_run: DemoRun, tmp_path: Path) -> None:
    summary = run_notebook("02_retrain_and_compare", demo_run, tmp_path)
    assert summary["_plots"] == 4

    # The demo registered v1 as champion; the notebook logs v2 as the challenger.
    assert summary["champion_before"] == demo_run.result.summary["model"]["version"] == "1"
    assert summary["challenger"] == "2"
    assert summary["challenger_aliases"] == ["challenger"]
    assert {"auc_mens_email", "ece_mens_email", "qini_mens_email"} <= set(summary["metrics"])

    evidence, decision = summary["evidence"], summary["decision"]
    champion, challenger = evidence["champion"], evidence["challenger"]
    assert (champion["version"], challenger["version"]) == ("1", "2")
    assert challenger["same_split"]
    assert evidence["n"] > 0
    for candidate in (champion, challenger):
        low, high = candidate["dr"]["ci95"]
        assert 0 <= low <= candidate["dr"]["mean"] <= high <= 1, candidate
    # The decision follows the rule on the evidence shown, and the registry follows the decision.
    beats = challenger["dr"]["ci95"][0] > champion["dr"]["mean"] + decision["margin"]
    assert decision["action"] == ("promote" if beats else "refuse"), decision["reason"]
    assert decision["applied"] == beats
    assert summary["champion_after"] == decision["champion_after"] == ("2" if beats else "1")
    assert decision["record_run_id"]
    assert summary["history"] == [
        {"action": decision["action"], "applied": beats, "challenger": "2"}
    ]


@pytest.mark.e2e
@pytest.mark.slow
def test_03_offline_policy_evaluation(demo_run: DemoRun, tmp_path: Path) -> None:
    summary = run_notebook("03_offline_policy_evaluation", demo_run, tmp_path)
    assert summary["_plots"] == 2

    obd = summary["obd"]
    assert set(obd["relative_errors"]) == {"ips", "snips", "dr"}
    for estimator, error in obd["relative_errors"].items():
        assert error < OBD_RELATIVE_ERROR_BOUND, (estimator, obd)
        low, high = obd["estimates"][estimator]["ci95"]
        assert low <= obd["truth"]["mean"] <= high, (estimator, obd)

    # Hillstrom: a fixed arm's truth is its own customers' visit rate on the held-out split.
    # With the experiment's constant 1/3, SNIPS of "always arm" is exactly that rate, and
    # the other estimators' intervals hold it.
    hillstrom, truth = summary["hillstrom"], summary["hillstrom_truth"]
    assert set(truth) == {"always mens_email", "always womens_email", "always no_email"}
    for policy, arm_truth in truth.items():
        assert hillstrom[policy]["snips"]["mean"] == pytest.approx(arm_truth["mean"], abs=1e-12)
        for estimator in ("ips", "dr"):
            low, high = hillstrom[policy][estimator]["ci95"]
            assert low <= arm_truth["mean"] <= high, (policy, estimator)
    # The model's greedy policy mostly e-mails, and e-mails added visits.
    greedy = hillstrom["model greedy"]["dr"]
    assert greedy["ci95"][0] > truth["always no_email"]["mean"], hillstrom

    # The decision log: on-policy, IPS of the live policy is its plain mean reward (the logged
    # propensity is the probability of the logged action), and the usual policies are there.
    log = summary["decision_log"]
    assert log["summary"]["analysed"] > 0
    rows = {(row["policy"], row["estimator"]): row for row in log["policy_values"]}
    for policy in ("live", "uniform_random", "best_fixed"):
        assert {(policy, e) for e in ("ips", "snips", "dr")} <= set(rows), policy
    assert rows["live", "ips"]["value"] == pytest.approx(rows["live", "on_policy"]["value"])
