#!/usr/bin/env bash
# Install what is missing, then open the app (http://localhost:8501). Extra arguments go to `streamlit run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh app
exec .venv/bin/python -m streamlit run streamlit_app.py "$@"
