"""The painter's HTTP server: the page, its start-up data, and TF Serving's REST API.

Standard library only (``http.server.ThreadingHTTPServer``): one thread per
connection, all sharing one loaded model; TensorFlow functions are safe to
call from several threads and release the GIL while they run.

Routes:
    GET  /, /static/<file>              the page (package data, no CDN)
    GET  /painter/config.json           model card, classes and colours, API URL
    GET  /painter/start                 start-up label map (ids as base64 uint16)
    GET  /painter/scene?seed=N          synthetic scene N (synthetic preset)
    POST /painter/upload                a label-map PNG -> ids, checked and resized
    POST /painter/style                 SEAN: {"image", "label"} (base64 files) -> the photo's style codes
    GET  /v1/models/<name>[/metadata]   TF Serving's status and metadata
    POST /v1/models/<name>:predict      TF Serving's predict (rest.py)
"""

from __future__ import annotations

import base64
import binascii
import importlib.resources
import ipaddress
import json
import mimetypes
import socket
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from spade_tf.data.layouts import DataError
from spade_tf.painter import rest
from spade_tf.painter.model import PainterModel, ids_json

MAX_BODY_BYTES = 8 * 2**20  # a 16-bit 2048x1024 label map is ~4 MiB uncompressed, ~5.6 MiB as base64
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def _static_files() -> dict[str, tuple[bytes, str]]:
    """name -> (content, content type) of ``spade_tf/painter/static``; read once, served from memory.

    Serving only these names (no path from the URL reaches the file system)
    rules out path traversal.
    """
    files = {}
    for entry in importlib.resources.files("spade_tf.painter").joinpath("static").iterdir():
        if entry.is_file():
            kind = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind == "application/javascript":
                kind = ("text/javascript" if entry.name.endswith(".js") else kind) + "; charset=utf-8"
            files[entry.name] = (entry.read_bytes(), kind)
    return files


def _style_files(data: bytes) -> tuple[bytes, bytes]:
    """The body of POST /painter/style, ``{"image": <base64>, "label": <base64>}`` -> (photo, label) bytes."""
    try:
        body = json.loads(data)
        files = tuple(base64.b64decode(body[key], validate=True) for key in ("image", "label"))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError, binascii.Error, ValueError):
        raise rest.RestError(400, 'Expected {"image": <base64 photo>, "label": <base64 label-map PNG>}.') from None
    return files


class PainterServer(ThreadingHTTPServer):
    """Serves the painter for one model.

    Args:
        address: (host, port); port 0 picks a free one (see ``url``).
        model: the ``PainterModel``.
        model_name: the name in ``/v1/models/<model_name>``.
        serving_url: a TF Serving base URL (``http://host:8501``) the page
            sends its predictions to instead of this server.
        max_body_bytes: larger request bodies are answered 413.
        log_requests: print one line per request to stderr.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # listen backlog; socketserver's 5 resets a burst of parallel connections

    def __init__(self, address: tuple[str, int], model: PainterModel, *, model_name: str = "spade",
                 serving_url: str | None = None, max_body_bytes: int = MAX_BODY_BYTES, log_requests: bool = True):
        if serving_url is None and model.synthesizer is None:
            raise ValueError("A painter without --serving_url needs a loaded model (synthesizer).")
        self.model = model
        self.model_name = model_name
        self.serving_url = serving_url.rstrip("/") if serving_url else None
        self.max_body_bytes = max_body_bytes
        self.log_requests = log_requests
        self.static = _static_files()
        self.page_config = self._page_config()
        if ":" in address[0]:  # an IPv6 address (--host=::1)
            self.address_family = socket.AF_INET6
        super().__init__(address, PainterHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    @property
    def loopback_only(self) -> bool:
        try:
            return ipaddress.ip_address(self.server_address[0]).is_loopback
        except ValueError:
            return False

    def _page_config(self) -> dict:
        c = self.model.config
        base = self.serving_url or ""
        return {
            "model_name": self.model_name,
            "predict_url": f"{base}/v1/models/{self.model_name}:predict",
            "serving_url": self.serving_url,
            "preset": c.preset,
            "image_size": list(c.image_size),
            "label_nc": c.label_nc,
            "valid_label_ids": self.model.card.get("valid_label_ids"),
            "use_instance_map": c.use_instance_map,
            "use_vae": c.use_vae,
            # A scalar seed input (VAE style, SEAN noise): requests in TF Serving's columnar format.
            "seed_input": c.use_vae or self.model.is_sean,
            "sean": self.model.sean_info(),
            "scenes": self.model.has_scenes,
            "classes": self.model.classes(),
            "card": self.model.card,
        }

    def content_security_policy(self) -> str:
        """Only this origin (and the TF Serving one): the page can load nothing from elsewhere."""
        connect = "'self'"
        if self.serving_url:
            parts = urlsplit(self.serving_url)
            connect += f" {parts.scheme}://{parts.netloc}"
        return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class PainterHandler(BaseHTTPRequestHandler):
    """One connection. Every answer is JSON or a static file; errors never show a traceback."""

    server: PainterServer
    protocol_version = "HTTP/1.1"
    server_version = "spade-tf-painter"
    timeout = 60  # seconds a connection may stall (slow or stuck clients do not hold a thread forever)
    # Headers and body go out in two writes: with Nagle's algorithm the body
    # waits for the client's delayed ACK of the headers, 40 ms a response.
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        return self.server_version  # not the Python version

    # Responses ------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: dict) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (bad request line, unsupported method) as JSON, not an HTML page."""
        try:
            short = HTTPStatus(code).phrase
        except ValueError:
            short = ""
        self.close_connection = True
        if code < 200 or code in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):
            self.send_response(code, message)
            self.end_headers()
            return
        self._json(code, {"error": message or short})

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        if self.server.log_requests:
            super().log_message(format, *args)

    # Requests -------------------------------------------------------------
    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_OPTIONS(self):
        # No CORS: only the page's own origin may call this server (a browser
        # on another site gets no Access-Control-Allow-Origin).
        self._json(405, {"error": "Method not allowed."})

    def handle_expect_100(self):
        """Refuses an oversized body before the client sends it (curl waits for 100 Continue)."""
        if self._content_length() > self.server.max_body_bytes:
            self._too_large()
            return False
        return super().handle_expect_100()

    def _content_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length", "0"))
        except ValueError:
            return -1

    def _too_large(self) -> None:
        self.close_connection = True
        self._json(413, {"error": f"Request body over {self.server.max_body_bytes} bytes "
                                  f"({self.server.max_body_bytes // 2**20} MiB)."})

    def _read_body(self) -> bytes | None:
        """The body, or None after answering 411/413/400."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._json(411, {"error": "Send the body with a Content-Length (chunked encoding is not supported)."})
            return None
        length = self._content_length()
        if length < 0:
            self.close_connection = True
            self._json(400, {"error": "Invalid Content-Length."})
            return None
        if length > self.server.max_body_bytes:
            self._too_large()
            self._drain(length)
            return None
        return self.rfile.read(length)

    def _drain(self, length: int, cap: int = 64 * 2**20) -> None:
        """Reads (and drops) what the client is still sending, so that it reads the 413 rather than a reset."""
        remaining = min(length, cap)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 2**20))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def _host_allowed(self) -> bool:
        """On a loopback address, only loopback Host headers: a web page cannot reach the painter
        through a DNS name that it rebinds to 127.0.0.1."""
        if not self.server.loopback_only:
            return True
        host = self.headers.get("Host", "")
        if not host:  # HTTP/1.0 tools; browsers, which DNS rebinding needs, always send one
            return True
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:].split("]")[0]
        return name.lower() in _LOOPBACK_NAMES

    def _dispatch(self) -> None:
        try:
            if not self._host_allowed():
                self._json(403, {"error": f"Host {self.headers.get('Host')!r} refused: the painter listens on a "
                                          "loopback address; open it as localhost or 127.0.0.1."})
                return
            path = urlsplit(self.path).path
            if path.startswith("/v1/"):
                self._serving_api(path)
            elif path.startswith("/painter/"):
                self._painter_api(path)
            else:
                self._static(path)
        except rest.RestError as e:
            self._json(e.status, e.body())
        except DataError as e:
            self._json(400, {"error": str(e)})
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - the client gets JSON; the console gets the traceback
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            self._json(500, {"error": "Internal error in the painter (the traceback is in its console)."})

    def _only(self, *methods: str) -> None:
        if self.command not in methods:
            raise rest.RestError(405, f"{self.command} is not allowed here; use {' or '.join(methods)}.")

    def _static(self, path: str) -> None:
        self._only("GET", "HEAD")
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        if not path.startswith("/static/") and name != "index.html" or name not in self.server.static:
            raise rest.RestError(404, f"No such page: {path}")
        content, kind = self.server.static[name]
        extra = {"Content-Security-Policy": self.server.content_security_policy()} if name.endswith(".html") else {}
        self._send(200, content, kind, extra)

    def _painter_api(self, path: str) -> None:
        model = self.server.model
        if path == "/painter/config.json":
            self._only("GET", "HEAD")
            self._json(200, self.server.page_config)
        elif path == "/painter/start":
            self._only("GET", "HEAD")
            self._json(200, ids_json(model.start()))
        elif path == "/painter/scene":
            self._only("GET", "HEAD")
            query = parse_qs(urlsplit(self.path).query)
            try:
                seed = int(query.get("seed", ["0"])[0])
            except ValueError:
                raise rest.RestError(400, "seed must be an integer.") from None
            self._json(200, ids_json(model.scene(seed % 2**31)))
        elif path == "/painter/upload":
            self._only("POST")
            data = self._read_body()
            if data is not None:
                self._json(200, ids_json(model.read_upload(data)))
        elif path == "/painter/style":
            self._only("POST")
            data = self._read_body()
            if data is not None:
                self._json(200, model.encode_style_upload(*_style_files(data)))
        else:
            raise rest.RestError(404, f"No such painter endpoint: {path}")

    def _serving_api(self, path: str) -> None:
        match = rest.MODEL_PATH.match(path)
        server = self.server
        if match is None:
            raise rest.RestError(404, f"Malformed request: {self.command} {path}")
        if server.serving_url:
            raise rest.RestError(404, f"This painter sends predictions to {server.serving_url}; ask it.")
        name, version, label, action = match.group("name", "version", "label", "action")
        synth = server.model.synthesizer
        if name != server.model_name:
            raise rest.RestError(404, f"Servable not found for request: Latest({name})")
        if version is not None and version != str(synth.version):
            raise rest.RestError(404, f"Servable not found for request: Specific({name}, {version})")
        if label is not None:
            raise rest.RestError(404, f"Unrecognized servable version label: {label}")
        if action in (":classify", ":regress"):
            raise rest.RestError(400, f"{action[1:]} needs a classification or regression signature; "
                                      "this model has predict signatures.")
        if action == ":predict":
            self._only("POST")
            data = self._read_body()
            if data is None:
                return
            try:
                body = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise rest.RestError(400, f"JSON Parse error: {e}") from None
            self._json(200, rest.predict(body, synth.signatures))
        elif action == "/metadata":
            self._only("GET", "HEAD")
            self._json(200, rest.model_metadata(name, synth.version, synth.signatures))
        else:
            self._only("GET", "HEAD")
            self._json(200, rest.model_status(synth.version))
