"""Widget keys in AppTests: page widgets are keyed per dataset (ui.state.scoped), so tests look them up through the scope."""

from __future__ import annotations

from core import data
from ui.state import SCOPE_KEY, Scope


def scoped(at, name: str) -> str:
    """The key of page widget `name` under the dataset the AppTest `at` has loaded."""
    return at.session_state[SCOPE_KEY].key(name)


def sample_key(name: str, sample: str = "reviews") -> str:
    """The key of page widget `name` under a bundled sample, for state set before the first run."""
    return Scope.of(data.load_sample(sample)).key(name)


def preload(at, ds: data.Dataset) -> None:
    """Put ds in an AppTest's session as if it had been loaded from the Hub box (the sidebar then leaves it alone)."""
    from ui.state import DATASET_KEY, ORIGIN_KEY

    at.session_state["ds_kind"] = "Hugging Face"
    at.session_state[DATASET_KEY] = ds
    at.session_state[ORIGIN_KEY] = ("hub", ds.source)
