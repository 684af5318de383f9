"""Serving: the REST API and live WebSocket stream, the Streamlit dashboard, and the runtime
hook that starts both next to the pipeline.

`tickwise.serve.api.create_app` builds the FastAPI app; `tickwise.serve.runtime.start_services`
runs it (and the dashboard) in the background of `tickwise up`. The dashboard reads only
through the API. Heavy imports (FastAPI, uvicorn, Streamlit) live in those modules, so
importing this package costs nothing.
"""

from __future__ import annotations
