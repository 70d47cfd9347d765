"""The editor's HTTP server: the page, its static files and a small JSON API, on 127.0.0.1.

Built on the standard library's ``http.server.ThreadingHTTPServer``: one thread per
request, which is what a single local user needs (the work itself runs in the session's one
worker thread), and a streamed response for the server-sent events is a loop of writes.

Security:

- it listens on 127.0.0.1 only, and answers only requests whose ``Host`` is that address
  (or ``localhost``) with its port (a page of another site cannot reach it by DNS rebinding);
- every request needs the session's random token (``?token=`` in the URL ``dragpipe edit``
  prints, or the ``X-Dragpipe-Token`` header the page sends): 403 without it;
- nothing is read from a path the request names: static files are a fixed list of names in
  this package, and everything else (the spec's photos, stage results) is served by an id
  the session handed out (``EditorSession.serve``), so there is nothing to traverse;
- request bodies need a ``Content-Length`` within limits (1 MiB of JSON, 8 MiB for a painted
  mask), checked before reading: 411 without one, 413 above;
- answers carry a strict Content-Security-Policy (scripts, styles and connections only from
  this server), ``no-referrer`` (the token never leaves in a Referer) and ``no-store``.

API (JSON unless said otherwise; errors are ``{"error": "one line"}``):

| request | answer |
|---|---|
| ``GET /`` | the page |
| ``GET /static/<name>`` | the page's script and style |
| ``GET /api/session`` | the spec's photos, their edits, the landmark names |
| ``POST /api/open {photo}`` | work: align, list the faces and the photo's edits |
| ``POST /api/invert {photo, face}`` | work: invert the face |
| ``POST /api/drag {photo, face, edits}`` | work: drag the last edit of the chain, composite |
| ``POST /api/save {photo, face, edits}`` | work: write the chain into the spec |
| ``POST /api/mask`` (``image/png`` body) | ``{"id": ...}`` of the painted mask |
| ``GET /api/work/<id>/events`` | the work's events as ``text/event-stream`` |
| ``GET /api/work/<id>?since=N`` | ``{"events": [...], "done": bool}`` |
| ``POST /api/work/<id>/stop`` | asks the work to stop |
| ``GET /api/files/<id>`` | a file the session serves |

Work requests answer ``{"work": id}`` at once (409 when the face has a job running).
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pipeline.editor.forms import BadRequest, ChainIn, FaceIn, PhotoIn, parse
from pipeline.editor.session import EditorSession
from pipeline.editor.work import FaceBusy
from pipeline.errors import PipelineError

HOST = "127.0.0.1"
MAX_JSON_BYTES = 1 << 20
MAX_MASK_BYTES = 8 << 20
EVENT_WAIT = 15.0  # seconds between keep-alive comments on an idle event stream
STATIC = {  # the only files served from disk by name
    "editor.js": "text/javascript; charset=utf-8",
    "editor.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_WORK = re.compile(r"^/api/work/([0-9]{1,9})(/events|/stop)?$")
_FILE = re.compile(r"^/api/files/([0-9a-f]{32})$")


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def static_text(name: str) -> bytes:
    """A file of the page (``pipeline/editor/static/<name>``, package data)."""
    return resources.files("pipeline.editor").joinpath("static", name).read_bytes()


class EditorServer:
    """The server of one ``EditorSession``: ``url`` (with the token), ``serve_forever()``
    or ``start()`` (in a thread), ``close()``."""

    def __init__(self, session: EditorSession, port: int = 0, token: str | None = None):
        self.session = session
        self.token = token or secrets.token_urlsafe(24)
        handler = type("Handler", (_Handler,), {"editor": self})
        self.httpd = ThreadingHTTPServer((HOST, port), handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/?token={self.token}"

    @property
    def hosts(self) -> tuple[str, ...]:
        return (f"{HOST}:{self.port}", f"localhost:{self.port}")

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.session.close()


class _Handler(BaseHTTPRequestHandler):
    editor: EditorServer
    server_version = "dragpipe-edit"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server API
        pass  # the terminal shows the editor's own lines only

    # Dispatch ---------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self._handle("POST")

    def _handle(self, method: str) -> None:
        try:
            url = urlsplit(self.path)
            self._check_access(url.query)
            route = self._route(method, url.path)
            route(parse_qs(url.query))
        except HttpError as exc:
            self._json({"error": str(exc)}, exc.status)
        except FaceBusy as exc:
            self._json({"error": str(exc)}, HTTPStatus.CONFLICT)
        except BadRequest as exc:
            self._json({"error": str(exc)}, HTTPStatus.BAD_REQUEST)
        except PipelineError as exc:
            self._json({"error": str(exc)}, HTTPStatus.UNPROCESSABLE_ENTITY)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _check_access(self, query: str) -> None:
        if self.headers.get("Host", "") not in self.editor.hosts:
            raise HttpError(HTTPStatus.FORBIDDEN, "forbidden: wrong Host header")
        given = self.headers.get("X-Dragpipe-Token") or (parse_qs(query).get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), self.editor.token.encode()):
            raise HttpError(
                HTTPStatus.FORBIDDEN,
                "forbidden: missing or wrong token (open the URL `dragpipe edit` printed)",
            )

    def _route(self, method: str, path: str) -> Callable[[dict[str, list[str]]], None]:
        session = self.editor.session
        if method == "GET":
            if path in ("/", "/index.html"):
                return lambda q: self._page()
            if path.startswith("/static/") and path[len("/static/") :] in STATIC:
                name = path[len("/static/") :]
                return lambda q: self._send(static_text(name), STATIC[name])
            if path == "/api/session":
                return lambda q: self._json(session.summary())
            found = _FILE.match(path)
            if found:
                return lambda q: self._file(found.group(1))
            found = _WORK.match(path)
            if found and found.group(2) in (None, "/events"):
                work = self._work(found.group(1))
                if found.group(2) == "/events":
                    return lambda q: self._events(work)
                return lambda q: self._work_snapshot(work, q)
        if method == "POST":
            jobs: dict[str, Callable[[], Any]] = {
                "/api/open": lambda: session.submit_open(parse(PhotoIn, self._body_json()).photo),
                "/api/invert": lambda: session.submit_invert(parse(FaceIn, self._body_json())),
                "/api/drag": lambda: session.submit_drag(parse(ChainIn, self._body_json())),
                "/api/save": lambda: session.submit_save(parse(ChainIn, self._body_json())),
            }
            if path in jobs:
                submit = jobs[path]
                return lambda q: self._json({"work": submit().id}, HTTPStatus.ACCEPTED)
            if path == "/api/mask":
                return lambda q: self._json({"id": session.upload_mask(self._body(MAX_MASK_BYTES))})
            found = _WORK.match(path)
            if found and found.group(2) == "/stop":
                work = self._work(found.group(1))
                return lambda q: self._stop(work)
        raise HttpError(HTTPStatus.NOT_FOUND, f"not found: {method} {path}")

    # Bodies -----------------------------------------------------------------------------------
    def _body(self, limit: int) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
        text = self.headers.get("Content-Length")
        if text is None or not text.strip().isdigit():
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        length = int(text)
        if length > limit:
            self.close_connection = True
            raise HttpError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"request body too large: {length} bytes, at most {limit}",
            )
        return self.rfile.read(length)

    def _body_json(self) -> Any:
        data = self._body(MAX_JSON_BYTES)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None

    # Answers ----------------------------------------------------------------------------------
    def _headers(self, status: HTTPStatus, content_type: str, length: int | None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.end_headers()

    def _send(self, data: bytes, content_type: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._headers(status, content_type, len(data))
        self.wfile.write(data)

    def _json(self, value: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(json.dumps(value).encode(), "application/json; charset=utf-8", status)

    def _page(self) -> None:
        html = static_text("index.html").decode("utf-8")
        self._send(
            html.replace("{{TOKEN}}", self.editor.token).encode(), "text/html; charset=utf-8"
        )

    def _file(self, ident: str) -> None:
        found = self.editor.session.served(ident)
        if found is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "not found: no such file in this session")
        self._send(found[1], found[0])

    def _work(self, ident: str):
        work = self.editor.session.worker.items.get(ident)
        if work is None:
            raise HttpError(HTTPStatus.NOT_FOUND, f"not found: no work {ident}")
        return work

    def _stop(self, work) -> None:
        work.stop()
        self._json({"stopping": work.id})

    def _work_snapshot(self, work, query: dict[str, list[str]]) -> None:
        since = (query.get("since") or ["0"])[0]
        start = int(since) if since.isdigit() else 0
        events = work.events[start:]
        self._json({"events": events, "done": work.done})

    def _events(self, work) -> None:
        """The work's events as a server-sent event stream, until it ends."""
        self._headers(HTTPStatus.OK, "text/event-stream", None)
        self.close_connection = True
        last = self.headers.get("Last-Event-ID", "")
        seq = int(last) + 1 if last.isdigit() else 0
        while True:
            events = work.events_since(seq, EVENT_WAIT)
            if not events:
                self.wfile.write(b": waiting\n\n")
            for event in events:
                self.wfile.write(f"id: {event['seq']}\ndata: {json.dumps(event)}\n\n".encode())
                seq = event["seq"] + 1
            self.wfile.flush()
            if events and events[-1]["type"] in ("done", "failed"):
                return
