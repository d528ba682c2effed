"""Rendering pages: the Jinja2 environment, what every template gets, and the page headers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from benhan import __version__
from benhan.web import i18n

TEMPLATE_DIR = Path(__file__).parent / "templates"

# Pages carry no inline script or style, so the policy can forbid both (an XSS then runs nothing).
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def language(request: Request) -> i18n.Lang:
    return i18n.negotiate(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))


@jinja2.pass_context
def _url_for(context: Mapping[str, Any], name: str, /, **params: Any) -> str:
    # A root-relative path, not Starlette's absolute URL: behind a TLS proxy that does not pass
    # X-Forwarded-Proto an absolute http:// link to /static would be blocked as mixed content.
    request: Request = context["request"]
    return request.url_for(name, **params).path


def _context(request: Request) -> dict[str, Any]:
    """Per request, so that two users in two languages never share a translation."""
    lang = language(request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return {
        "version": __version__,
        "lang": lang,
        "here": here,
        "_": partial(i18n.gettext, lang),
        "ngettext": partial(i18n.ngettext, lang),
        "number": partial(i18n.number, lang),
        "clock": partial(i18n.clock, lang),
    }


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the tests, not a page
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["url_for"] = _url_for
    return env


TEMPLATES = Jinja2Templates(env=_environment(), context_processors=[_context])


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    headers = {"Content-Language": language(request), "Vary": "Cookie, Accept-Language"}
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status, headers=headers)


class PageRoute(APIRoute):
    """A route whose responses carry the page security headers (the FHIR API sets its own)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_headers(request: Request) -> Response:
            response = await handler(request)
            response.headers.update(SECURITY_HEADERS)
            return response

        return with_headers
