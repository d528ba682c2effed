"""Pages for people: Jinja2 + htmx, server-rendered, in Vietnamese and English."""

from __future__ import annotations

from benhan.web.pages import mount

__all__ = ["mount"]
