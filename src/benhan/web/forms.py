"""What the signed-in pages share: guards (sign-in, role, CSRF), rendering, messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from babel.dates import format_datetime
from fastapi import Form, Request
from starlette.responses import RedirectResponse, Response

from benhan.access import ANONYMOUS, JOB, ROLES, Role
from benhan.fhir.primitives import VIETNAM
from benhan.store.database import Store
from benhan.web.i18n import Lang
from benhan.web.rendering import language, render
from benhan.web.session import (
    PageSession,
    current,
    login_redirect,
    require_csrf,
)

Field = Annotated[str, Form()]
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # a resource id as FHIR allows it


@dataclass(frozen=True)
class Message:
    """A sentence for the page, translated when rendered: `_(text, **values)`."""

    text: str
    values: dict[str, Any] = field(default_factory=dict)


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def moment(lang: Lang, moment: datetime) -> str:
    pattern = "HH:mm dd/MM/yyyy" if lang == "vi" else "dd MMM yyyy, HH:mm"
    return format_datetime(moment, pattern, tzinfo=VIETNAM, locale=lang)


def page(request: Request, template: str, ctx: dict[str, Any], status: int = 200) -> Response:
    lang = language(request)
    s = current(request)
    base = {
        "moment": partial(moment, lang),
        "roles": {**ROLES, JOB.code: JOB, ANONYMOUS.code: ANONYMOUS},
        "csrf": s.csrf if s else "",
    }
    response = render(request, template, {**base, **ctx}, status)
    # These pages carry a CSRF token and people's names: never kept by a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def forbidden(request: Request) -> Response:
    return page(request, "forbidden.html", {}, 403)


def guard(request: Request, allowed: Callable[[Role], bool]) -> PageSession | Response:
    """The session when its role may use the page; else the sign-in redirect or a 403 page."""
    s = current(request)
    if s is None:
        return login_redirect(request)
    return s if allowed(s.actor.role) else forbidden(request)


def guard_post(
    request: Request, csrf: str, allowed: Callable[[Role], bool]
) -> PageSession | Response:
    """For forms that change something: the CSRF token first (403), then the role."""
    require_csrf(request, csrf)
    return guard(request, allowed)


def see_other(request: Request, name: str, query: str = "", **params: str) -> RedirectResponse:
    """303 to the page `name` (with its path `params`), after a form that changed something."""
    path = request.url_for(name, **params).path
    return RedirectResponse(f"{path}?{query}" if query else path, status_code=303)
