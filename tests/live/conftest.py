"""A real uvicorn server in a thread, per backend, for clients that speak real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from benhan.api import create_app
from benhan.store.database import Store
from tests.conftest import make_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def live_server(store: Store, database_url: str, tmp_path: Path) -> Iterator[str]:
    """The base URL of a running server (http://127.0.0.1:PORT), stopped afterwards."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(
        settings=make_settings(database_url, tmp_path, base_url=f"{base}/fhir"), store=store
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(timeout=10)
