"""Queue boards."""

from __future__ import annotations

from fastapi import APIRouter

from benhan.web.rendering import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)
