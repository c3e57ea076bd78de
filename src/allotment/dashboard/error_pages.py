"""Errors as pages: a session that ended goes to sign-in, a refusal or a missing thing gets a
page saying so in plain words, and nothing reaches a person as a stack trace."""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from allotment.dashboard.auth import Refused, SignInRequired, session_of
from allotment.dashboard.web import base_path, render
from allotment.errors import AllotmentError, NotFound, PreconditionFailed

logger = logging.getLogger("allotment.dashboard")


def _sign_in(request: Request, error: Exception) -> Response:
    assert isinstance(error, SignInRequired)
    query = {"next": request.url.path} if request.method == "GET" else {}
    if error.reason:
        query["why"] = error.reason
    target = f"{base_path(request)}/login" + (f"?{urlencode(query)}" if query else "")
    if request.headers.get("HX-Request"):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _page(request: Request, status_code: int, title: str, message: str) -> Response:
    return render(
        request,
        "error.html",
        session=session_of(request),
        status_code=status_code,
        title=title,
        message=message,
    )


def _refused(request: Request, error: Exception) -> Response:
    assert isinstance(error, Refused)
    return _page(request, error.status_code, error.title, error.message)


def _allotment_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, AllotmentError)
    if isinstance(error, NotFound | PreconditionFailed):
        return _page(request, 404, "Not found", error.message)
    return _page(request, 400, "That did not work", error.message)


def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 404:
        return _page(request, 404, "Not found", "There is no page at this address.")
    if error.status_code == 405:
        return _page(request, 405, "Not allowed", "This address does not take that request.")
    return _page(request, error.status_code, "That did not work", str(error.detail))


def _invalid_request(request: Request, error: Exception) -> Response:
    return _page(request, 400, "That did not work", "The address or form is not valid.")


def _server_error(request: Request, error: Exception) -> Response:
    logger.exception("dashboard error on %s %s", request.method, request.url.path)
    return _page(
        request, 500, "Something went wrong", "The server could not show this page; try again."
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(SignInRequired, _sign_in)
    app.add_exception_handler(Refused, _refused)
    app.add_exception_handler(AllotmentError, _allotment_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _server_error)
