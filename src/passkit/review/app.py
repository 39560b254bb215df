"""The review web app: a Starlette application served by uvicorn on 127.0.0.1.

Security model (the app shows private, unreleased data and writes decisions):
* every request needs the session token (``secrets.token_urlsafe``) from the printed URL: as ``?token=`` (the first
  visit; it is then moved into an HttpOnly, SameSite=Strict cookie and the URL is cleaned by a redirect), as that
  cookie, or as the ``X-Passkit-Token`` header; compared in constant time; otherwise 401;
* the ``Host`` header must name this machine (DNS rebinding), otherwise 400;
* POSTs must carry the token in the ``X-Passkit-Token`` header (a cookie alone is not enough, so another site
  cannot post through the browser), an ``Origin`` (when sent) equal to this server, ``application/json``, a body
  under 64 KiB that matches the schema, and keys of the dataset; otherwise 403/415/413/400/404;
* images are served only by key, looked up in the dataset index: no filesystem path ever comes from a URL, and an
  unknown key (or anything with a slash or dots in it) is a 404;
* a strict Content-Security-Policy (no inline script), ``X-Frame-Options: DENY``, no referrer.
"""

from __future__ import annotations

import functools
import hmac
import io
import json
import threading
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from PIL import Image, ImageOps
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from passkit.core.keys import is_valid_key
from passkit.core.reasons import REVIEW_HUMAN, REVIEW_OTHER
from passkit.review.dataset import DatasetError, ReviewDataset
from passkit.review.store import CLEAN, PROBLEM, Decision, DecisionStore

TOKEN_HEADER = "x-passkit-token"
MAX_BODY = 64 * 1024
MAX_KEYS_PER_POST = 500
MAX_PAGE = 200
THUMB_SIDE = 384
CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "tif": "image/tiff",
    "tiff": "image/tiff",
}
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


@dataclass
class Counts:
    decided: int = 0
    human: int = 0
    other: int = 0
    clean: int = 0

    def change(self, decision: Decision | None, sign: int) -> None:
        if decision is None:
            return
        self.decided += sign
        if decision.label == CLEAN:
            self.clean += sign
        elif decision.reason == REVIEW_HUMAN:
            self.human += sign
        else:
            self.other += sign


@dataclass
class ReviewSession:
    """What one running app serves: a dataset, one queue of its keys, the decisions store and the reviewer."""

    dataset: ReviewDataset
    store: DecisionStore
    queue: str
    keys: list[str]
    reviewer: str
    token: str
    page_size: int = 40
    decisions: dict[str, Decision] = field(default_factory=dict)
    counts: Counts = field(default_factory=Counts)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._in_queue = set(self.keys)
        self.reload()

    def reload(self) -> None:
        """Re-read the current decisions (another reviewer may write to the same store)."""
        decisions = self.store.current()
        counts = Counts()
        for key in self.keys:
            counts.change(decisions.get(key), +1)
        with self._lock:
            self.decisions, self.counts = decisions, counts

    def apply(self, key: str, decision: Decision | None) -> None:
        with self._lock:
            old = self.decisions.pop(key, None)
            if decision is not None:
                self.decisions[key] = decision
            if key in self._in_queue:
                self.counts.change(old, -1)
                self.counts.change(decision, +1)

    def state(self) -> dict[str, Any]:
        first_undecided = next((i for i, key in enumerate(self.keys) if key not in self.decisions), None)
        return {
            "queue": self.queue,
            "reviewer": self.reviewer,
            "total": len(self.keys),
            "page_size": self.page_size,
            "first_undecided": first_undecided,
            "counts": self.progress(),
        }

    def progress(self) -> dict[str, int]:
        with self._lock:
            counts = self.counts
            return {"decided": counts.decided, "human": counts.human, "other": counts.other, "clean": counts.clean}


def _decision_json(decision: Decision | None) -> dict[str, str] | None:
    if decision is None:
        return None
    return {"label": decision.label, "reason": decision.reason, "reviewer": decision.reviewer, "time": decision.time}


def _query_token(scope: Scope) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
    return values[0] if values else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _same(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())


class TokenMiddleware:
    """Requires the session token on every request; moves a URL token into a cookie; guards POSTs."""

    def __init__(self, app: ASGIApp, token: str, cookie_name: str) -> None:
        self.app = app
        self.token = token
        self.cookie_name = cookie_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_token = _header(scope, TOKEN_HEADER.encode())
        query_token = _query_token(scope)
        cookie = SimpleCookie()
        try:
            cookie.load(_header(scope, b"cookie") or "")
        except ValueError:  # http.cookies.CookieError
            cookie = SimpleCookie()
        cookie_token = cookie[self.cookie_name].value if self.cookie_name in cookie else None
        authorised = any(_same(value, self.token) for value in (header_token, query_token, cookie_token))
        if not authorised:
            response = PlainTextResponse(
                "401: this review session needs its token; open the URL that `passkit review` printed.",
                status_code=401,
                headers=SECURITY_HEADERS,
            )
            await response(scope, receive, send)
            return
        method = scope["method"]
        if method not in ("GET", "HEAD", "POST"):
            await PlainTextResponse("405: method not allowed", 405, headers=SECURITY_HEADERS)(scope, receive, send)
            return
        if method == "POST":
            problem = self._post_problem(scope, header_token)
            if problem is not None:
                await PlainTextResponse(problem[1], problem[0], headers=SECURITY_HEADERS)(scope, receive, send)
                return
        if method == "GET" and scope["path"] == "/" and _same(query_token, self.token):
            response = Response(status_code=303, headers={**SECURITY_HEADERS, "location": "/"})
            response.set_cookie(self.cookie_name, self.token, httponly=True, samesite="strict", path="/")
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _post_problem(self, scope: Scope, header_token: str | None) -> tuple[int, str] | None:
        if not _same(header_token, self.token):
            return 403, "403: a POST needs the X-Passkit-Token header"
        origin = _header(scope, b"origin")
        host = _header(scope, b"host")
        if origin is not None and origin != f"http://{host}":
            return 403, f"403: cross-origin POST refused (Origin {origin})"
        fetch_site = _header(scope, b"sec-fetch-site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return 403, f"403: cross-site POST refused (Sec-Fetch-Site {fetch_site})"
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return 415, "415: POST bodies are application/json"
        length = _header(scope, b"content-length")
        if length is None or not length.isdigit():
            return 411, "411: Content-Length required"
        if int(length) > MAX_BODY:
            return 413, "413: body too large"
        return None


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BadRequestError(ValueError):
    """A request body that does not match the schema (400)."""


def _parse_keys(body: Any, session: ReviewSession, allowed: set[str]) -> list[str]:
    if not isinstance(body, dict):
        raise BadRequestError("body must be a JSON object")
    extra = set(body) - allowed
    if extra:
        raise BadRequestError(f"unexpected fields {sorted(extra)}")
    keys = body.get("keys")
    if not isinstance(keys, list) or not keys or len(keys) > MAX_KEYS_PER_POST:
        raise BadRequestError(f"keys must be a list of 1..{MAX_KEYS_PER_POST} keys")
    if not all(isinstance(key, str) and is_valid_key(key) for key in keys) or len(set(keys)) != len(keys):
        raise BadRequestError("keys must be distinct valid keys")
    return keys


async def _json_body(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise BadRequestError("body too large")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadRequestError(f"invalid JSON ({error})") from error


def make_thumbnail(data: bytes, side: int = THUMB_SIDE) -> bytes:
    """A JPEG no larger than ``side`` px (JPEG draft decoding; orientation applied)."""
    with Image.open(io.BytesIO(data)) as image:
        if image.format == "JPEG":
            image.draft("RGB", (side, side))
        picture = ImageOps.exif_transpose(image).convert("RGB")
    picture.thumbnail((side, side))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85)
    return out.getvalue()


def create_app(session: ReviewSession, *, allowed_hosts: list[str], cookie_name: str = "passkit_review") -> Starlette:
    """The ASGI app for one review session (serve it with uvicorn; see :func:`passkit.review.server.serve`)."""
    static = {name: resources.files("passkit.review").joinpath("static", name).read_bytes() for name in STATIC}
    page = resources.files("passkit.review").joinpath("static", "index.html").read_text(encoding="utf-8")

    @functools.lru_cache(maxsize=2048)
    def thumbnail(key: str) -> tuple[bytes, str]:
        data, ext = session.dataset.read_image(key)
        try:
            return make_thumbnail(data), "image/jpeg"
        except (OSError, ValueError, Image.DecompressionBombError):
            return data, CONTENT_TYPES.get(ext.lower(), "application/octet-stream")

    async def index(request: Request) -> Response:
        html = (
            page.replace("{{token}}", session.token)
            .replace("{{queue}}", session.queue)
            .replace("{{reviewer}}", _html_escape(session.reviewer))
        )
        return Response(html, media_type="text/html; charset=utf-8")

    async def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            return PlainTextResponse("404: not found", 404)
        return Response(static[name], media_type=STATIC[name])

    def state(request: Request) -> Response:
        session.reload()
        return JSONResponse(session.state())

    def items(request: Request) -> Response:
        try:
            start = int(request.query_params.get("start", "0"))
            count = int(request.query_params.get("count", str(session.page_size)))
        except ValueError:
            return PlainTextResponse("400: start and count are integers", 400)
        if start < 0 or not 1 <= count <= MAX_PAGE:
            return PlainTextResponse(f"400: start >= 0 and 1 <= count <= {MAX_PAGE}", 400)
        keys = session.keys[start : start + count]
        described = session.dataset.describe(keys)
        for item in described:
            item["decision"] = _decision_json(session.decisions.get(item["key"]))
        return JSONResponse({"start": start, "total": len(session.keys), "items": described})

    def image(request: Request) -> Response:
        key = request.path_params["key"]
        if not is_valid_key(key) or key not in session.dataset:
            return PlainTextResponse("404: no such image", 404)
        try:
            if request.query_params.get("full") == "1":
                data, ext = session.dataset.read_image(key)
                content_type = CONTENT_TYPES.get(ext.lower(), "application/octet-stream")
            else:
                data, content_type = thumbnail(key)
        except (OSError, DatasetError) as error:
            return PlainTextResponse(f"500: cannot read {key}: {error}", 500)
        return Response(data, media_type=content_type, headers={"cache-control": "private, max-age=3600"})

    async def decide(request: Request) -> Response:
        try:
            body = await _json_body(request)
            keys = _parse_keys(body, session, {"keys", "label", "reason"})
            label, reason = body.get("label"), body.get("reason", "")
            if label not in (PROBLEM, CLEAN) or not isinstance(reason, str):
                raise BadRequestError("label must be 'problem' or 'clean'")
            if (label == PROBLEM) != (reason in (REVIEW_HUMAN, REVIEW_OTHER)) or (label == CLEAN and reason):
                raise BadRequestError(f"a problem has reason {REVIEW_HUMAN} or {REVIEW_OTHER}; clean has none")
        except BadRequestError as error:
            return PlainTextResponse(f"400: {error}", 400)
        unknown = [key for key in keys if key not in session.dataset]
        if unknown:
            return PlainTextResponse(f"404: unknown keys {unknown[:5]}", 404)
        written = await run_in_threadpool(
            session.store.record_many, keys, label, reason, reviewer=session.reviewer, queue=session.queue
        )
        for decision in written:
            session.apply(decision.key, decision)
        return JSONResponse({"decisions": {d.key: _decision_json(d) for d in written}, "counts": session.progress()})

    async def undo(request: Request) -> Response:
        try:
            keys = _parse_keys(await _json_body(request), session, {"keys"})
        except BadRequestError as error:
            return PlainTextResponse(f"400: {error}", 400)
        unknown = [key for key in keys if key not in session.dataset]
        if unknown:
            return PlainTextResponse(f"404: unknown keys {unknown[:5]}", 404)
        await run_in_threadpool(session.store.undo_many, keys, reviewer=session.reviewer, queue=session.queue)
        for key in keys:
            session.apply(key, None)
        return JSONResponse({"undone": keys, "counts": session.progress()})

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Route("/static/{name}", static_file, methods=["GET"]),
        Route("/api/state", state, methods=["GET"]),
        Route("/api/items", items, methods=["GET"]),
        Route("/img/{key}", image, methods=["GET"]),
        Route("/api/decide", decide, methods=["POST"]),
        Route("/api/undo", undo, methods=["POST"]),
    ]
    middleware = [
        Middleware(SecurityHeadersMiddleware),
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts),
        Middleware(TokenMiddleware, token=session.token, cookie_name=cookie_name),
    ]
    return Starlette(routes=routes, middleware=middleware)


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
