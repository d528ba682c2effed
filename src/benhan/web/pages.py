"""Pages for people at /: the home page with the repository's counts, and the language switch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from benhan.fhir.primitives import now
from benhan.store.database import Store
from benhan.store.stats import counts_by_type
from benhan.web import i18n
from benhan.web.counts import summarize
from benhan.web.i18n import N_
from benhan.web.rendering import PageRoute, render
from benhan.web.session import LOCAL_PATH, current, login_redirect

STATIC_DIR = Path(__file__).parent / "static"
LANG_COOKIE_AGE = 365 * 24 * 3600

NextPath = Annotated[str, Query(alias="next")]

router = APIRouter(route_class=PageRoute, include_in_schema=False)


class _StaticFiles(StaticFiles):
    """Static files that a browser must not sniff into another type."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static", _StaticFiles(directory=STATIC_DIR), name="static")
    app.state.html_error = error_page


def error_page(request: Request, status: int) -> Response:
    """A readable page for errors on page paths (the API answers with OperationOutcomes)."""
    messages = {
        404: N_("Không tìm thấy trang này."),
        403: N_(
            "Yêu cầu bị từ chối: biểu mẫu đã hết hạn hoặc bạn không có quyền. Hãy tải lại trang."
        ),
    }
    message = messages.get(status, N_("Yêu cầu không hợp lệ."))
    return render(request, "error.html", {"message": message, "values": {}}, status)


def _counts_context(request: Request) -> dict[str, Any]:
    store: Store = request.app.state.store
    with store.read() as conn:
        counts = counts_by_type(conn)
    return {"summary": summarize(counts), "updated": now()}


# Plain `def` routes: FastAPI runs them in its thread pool, so the blocking read never stalls
# the event loop.
@router.get("/", name="home")
def home(request: Request) -> Response:
    if current(request) is None:
        return login_redirect(request)
    response = render(request, "home.html", _counts_context(request))
    response.headers["Cache-Control"] = "no-store"  # it carries the session's CSRF token
    return response


@router.get("/fragments/counts", name="counts_fragment")
def counts_fragment(request: Request) -> Response:
    """The counts table and chart alone, for the htmx refresh button."""
    if current(request) is None:
        return login_redirect(request)
    return render(request, "partials/counts.html", _counts_context(request))


@router.get("/lang/{code}", name="set_lang")
def set_lang(request: Request, code: str, next_: NextPath = "/") -> Response:
    """The language switch: remember `code` in a cookie and go back to the page it was used on."""
    lang = i18n.as_lang(code)
    if lang is None:
        message = N_("Không có ngôn ngữ “%(code)s”. Hãy chọn tiếng Việt (vi) hoặc English (en).")
        return render(request, "error.html", {"message": message, "values": {"code": code}}, 400)
    # Only a path on this site: anything else would make the switch an open redirect.
    response = RedirectResponse(next_ if LOCAL_PATH.match(next_) else "/", status_code=303)
    _remember(request, response, lang)
    return response


def _remember(request: Request, response: Response, lang: i18n.Lang) -> None:
    # HttpOnly: no script reads it; Lax: sent on the top-level navigations that render pages.
    response.set_cookie(
        i18n.COOKIE,
        lang,
        max_age=LANG_COOKIE_AGE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


__all__ = ["mount", "router"]
