"""Every error the gateway returns, in one place, as `{"error": {"code", "message"}}`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, get_args

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.errors import (
    PortalsError,
    RateLimited,
)

__all__ = ["error_response", "install_error_handlers", "internal_error_response"]


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _retry_after(exc: PortalsError) -> Mapping[str, str] | None:
    if isinstance(exc, RateLimited):
        return {
            "Retry-After": str(exc.retry_after),
            "RateLimit-Limit": str(exc.limit),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(exc.retry_after),
        }
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int):
        # Every refusal that passes: a rate, a cap or an outage.
        return {"Retry-After": str(retry_after)}
    return None


async def _portals_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PortalsError)
    return error_response(exc.status_code, exc.code, exc.message, headers=_retry_after(exc))


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


# What pydantic says when the body as a whole is missing or not a JSON object: too terse for
# someone trying the API with curl, who most often left out the Content-Type header.
_WHOLE_BODY_ERRORS = {"missing", "model_attributes_type", "dict_type", "model_type"}


def _body_examples(request: Request) -> str:
    """The examples the route's body model gives, as JSON text ("{...} or {...}")."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    examples: list[Any] = []
    for param in getattr(dependant, "body_params", ()):
        annotation = param.field_info.annotation
        for model in get_args(annotation) or (annotation,):
            if isinstance(model, type) and issubclass(model, BaseModel):
                extra = model.model_config.get("json_schema_extra")
                found = extra.get("examples") if isinstance(extra, dict) else None
                examples += found if isinstance(found, list) else []
    return " or ".join(json.dumps(example) for example in examples) or "a JSON object"


def _whole_body_message(request: Request, error_type: str) -> str:
    examples = _body_examples(request)
    content_type = request.headers.get("content-type")
    media_type = (content_type or "").partition(";")[0].strip().lower()
    is_json = media_type == "application/json" or media_type.endswith("+json")
    if error_type != "missing" and not is_json:
        had = f"its Content-Type is {media_type}" if content_type else "it had no Content-Type"
        return (
            "send the body as JSON with the header Content-Type: application/json "
            f"({had}), for example {examples}"
        )
    if error_type == "missing":
        return (
            f"this route takes a JSON body, for example {examples}, "
            "with the header Content-Type: application/json"
        )
    return f"the body must be a JSON object, for example {examples}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        field = _field_name(tuple(err.get("loc", ())))
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            field, message = "body", "the body is not valid JSON"
        elif err.get("type") == "extra_forbidden":
            message = "unknown field"
        elif tuple(err.get("loc", ())) == ("body",) and err.get("type") in _WHOLE_BODY_ERRORS:
            message = _whole_body_message(request, str(err["type"]))
        problems.append({"field": field, "message": message.removeprefix("Value error, ")})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return error_response(422, "invalid_request", summary or "invalid request", details=problems)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot even decode (not UTF-8, say): to a client that
        # is the same mistake as malformed JSON.
        return error_response(
            422,
            "invalid_request",
            "body: the body is not valid JSON",
            details=[{"field": "body", "message": "the body is not valid JSON"}],
        )
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("allow", (exc.headers or {}).get("Allow", ""))
        message = f"This route does not take {request.method}; it takes {allowed or 'none'}."
    elif exc.status_code == 404 and message == "Not Found":
        message = "There is no such route; /openapi.json lists them all."
    return error_response(exc.status_code, code, message, headers=exc.headers)


def internal_error_response(correlation_id: str) -> JSONResponse:
    """The body of an unexpected error says nothing of it: only the id that finds it in the
    log (the same id is in the `X-Request-ID` header)."""
    return error_response(
        500,
        "internal_error",
        f"Something went wrong on our side (correlation id {correlation_id}).",
        details={"correlation_id": correlation_id},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PortalsError, _portals_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
