"""JSON answers to the device: a refusal, or the provider's answer as it came."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from edgecap.tokenservice.policy import Refusal
from edgecap.tokenservice.upstream import Answer


def refusal_response(refusal: Refusal) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if refusal.retry_after is not None:
        headers["Retry-After"] = str(refusal.retry_after)
    if refusal.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="edgecap-tokens"'
    return JSONResponse(refusal.body(), refusal.status, headers)


def answer_response(answer: Answer) -> Response:
    headers = {"Cache-Control": "no-store", **answer.headers}
    return Response(answer.body, answer.status, headers, media_type=answer.content_type)
