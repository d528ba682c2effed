"""Sign-in, accounts, break-glass and privacy pages (being written)."""

from fastapi import APIRouter

from benhan.web.rendering import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)
