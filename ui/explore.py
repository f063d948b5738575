"""What the explorer's views share across pages: the label errors found on the Data page, kept for this dataset."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import data, explore
from ui.state import current_dataset, current_scope, scoped

LABEL_ISSUES = "label_issues"  # a scoped session key: the Data page's suspected label errors of this dataset


@st.cache_data(show_spinner="Embedding every row and cross-validating a logistic regression…", max_entries=4)
def label_issues(key: str, _ds: data.Dataset) -> pd.DataFrame:
    """explore.label_issues of the whole dataset, once per dataset fingerprint (key)."""
    return explore.label_issues(_ds)


def label_error_caveats(eval_sha256: str) -> list[str]:
    """A caveat for a comparison on one of this dataset's splits when the Data page found many suspected label errors in it."""
    issues, scope, ds = st.session_state.get(scoped(LABEL_ISSUES)), current_scope(), current_dataset()
    if issues is None or scope is None or ds is None:
        return []
    split = next((s for s, sha in scope.fingerprints.items() if sha == eval_sha256), None)
    caveat = explore.label_error_caveat(issues, split, len(ds.splits[split])) if split else None
    return [caveat] if caveat else []
