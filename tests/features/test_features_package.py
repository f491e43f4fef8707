"""The package's public names, and that importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import features
from features import PROFILE_FEATURES


def test_every_public_name_resolves() -> None:
    for name in features.__all__:
        assert getattr(features, name) is not None, name


def test_the_feast_schema_lists_the_profile_features() -> None:
    from features.definitions import PROFILE_FEATURE_TYPES

    assert tuple(PROFILE_FEATURE_TYPES) == PROFILE_FEATURES


def test_importing_the_package_does_not_import_feast() -> None:
    probe = "import sys, features; features.PROPENSITY_SERVICE; print('feast' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
