from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def test_app_opens_with_sample_loaded():
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    assert not at.exception
    assert "reviews" in at.sidebar.caption[0].value or "finance" in at.sidebar.caption[0].value
