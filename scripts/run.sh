#!/usr/bin/env bash
# Install what is missing, then open the app (http://localhost:8501). Extra arguments go to `streamlit run`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh app
# PFT_MAX_UPLOAD_MB (whole megabytes) is the one upload limit: the loader's, the uploader's and the server's
exec .venv/bin/python -m streamlit run streamlit_app.py ${PFT_MAX_UPLOAD_MB:+--server.maxUploadSize=$PFT_MAX_UPLOAD_MB} "$@"
