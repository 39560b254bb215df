"""``passkit review``: open a filtered folder, pick the queue, serve the app with uvicorn on a local port."""

from __future__ import annotations

import getpass
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from passkit.review.app import ReviewSession, create_app
from passkit.review.audit import load_or_draw
from passkit.review.dataset import ReviewDataset
from passkit.review.queues import AUDIT, build_queue
from passkit.review.store import DecisionStore

LOCAL_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


@dataclass(frozen=True)
class ReviewServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    queue: str = "borderline"
    reviewer: str = ""
    page_size: int = 40


def open_session(directory: str | os.PathLike[str], cfg: ReviewServerConfig, token: str) -> tuple[ReviewSession, str]:
    """The session to serve and a note about the queue (e.g. that an audit sample was drawn now)."""
    dataset = ReviewDataset.open(directory)
    store = DecisionStore.for_dataset(directory)
    note = ""
    audit_keys = None
    if cfg.queue == AUDIT:
        plan, drawn = load_or_draw(directory, dataset)
        audit_keys = plan.keys
        note = f"audit sample of {plan.sample_size:,} (seed {plan.seed}) " + (
            "drawn now" if drawn else f"from {plan.drawn}"
        )
    keys = build_queue(cfg.queue, dataset, audit_keys)
    reviewer = cfg.reviewer.strip() or default_reviewer()
    return ReviewSession(dataset, store, cfg.queue, keys, reviewer, token, page_size=cfg.page_size), note


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one), so the printed URL names the real port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets (else Nagle + delayed ACK add ~40 ms a response).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_host(host: str) -> str:
    return f"[{host.strip('[]')}]" if ":" in host else host


def serve(
    directory: str | os.PathLike[str],
    cfg: ReviewServerConfig,
    *,
    announce: Callable[[str, ReviewSession, str], None],
) -> None:
    """Serve until interrupted; ``announce(url, session, note)`` is called once the port is bound."""
    token = secrets.token_urlsafe(24)
    session, note = open_session(directory, cfg, token)
    sock = bind(cfg.host, cfg.port)
    port = sock.getsockname()[1]
    wildcard = cfg.host in ("0.0.0.0", "::", "[::]")
    allowed = ["*"] if wildcard else sorted({*LOCAL_HOSTS, cfg.host, url_host(cfg.host)})
    app = create_app(session, allowed_hosts=allowed, cookie_name=f"passkit_review_{port}")
    shown_host = "127.0.0.1" if wildcard else url_host(cfg.host)
    announce(f"http://{shown_host}:{port}/?token={token}", session, note)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        session.store.close()
