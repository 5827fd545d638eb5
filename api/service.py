"""The service layer around the API: authentication and roles, rate and size limits,
timeouts, the audit trail, structured logs and metrics — installed on a built app.

    app = create_app(store, params)
    install_service_layer(app, ServiceSettings())

Everything runs in one ASGI middleware, in this order: match the route → public routes pass
→ authenticate (401) → authorise from the policy table (403; routes missing from the table
are denied) → per-key rate limit (429) → body size (413) → audit slot (503) → the endpoint,
under a timeout (503) → audit record (decisions wait for its commit) → log line and metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import typer
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.audit import (
    AUDIT_SUFFIX,
    AuditLog,
    AuditUnavailable,
    audit_path_for,
    rules_version,
    verify_audit,
)
from api.errors import ErrorPublic
from api.observability import (
    ACCESS_LOGGER,
    JobCollector,
    ServiceMetrics,
    configure_json_logging,
)
from api.routers import audit as audit_router
from api.security import (
    ANONYMOUS_ADMIN,
    DECISION_ROUTES,
    KeyConfigError,
    KeyRing,
    Principal,
    RateLimiter,
    Role,
    allowed_roles,
    generate_api_key,
    is_public,
    key_file_line,
    load_keys,
    presented_key,
    retry_after_header,
)

access_log = logging.getLogger(ACCESS_LOGGER)
security_log = logging.getLogger("riskgraph.security")


class ServiceSettings(BaseSettings):
    """How the service layer runs; environment variables with the prefix RISKGRAPH_.

    In production mode the service refuses to start without API keys, with a demo or short
    key, or with authentication or the audit trail switched off.
    """

    model_config = SettingsConfigDict(
        env_prefix="RISKGRAPH_", env_file=None, extra="ignore", hide_input_in_errors=True
    )

    mode: Literal["local", "production"] = "local"
    # `key=role,key=role`; hashed as soon as it is read (only hashes are kept).
    api_keys: SecretStr | None = None
    # One `sha256:<hex>=role` a line: production never needs a plaintext key.
    api_keys_file: Path | None = None
    auth_enabled: bool = True
    audit_enabled: bool = True
    # Default: `<db>.audit.sqlite` beside an SQLite store.
    audit_db: Path | None = None
    audit_queue_size: int = Field(default=10_000, ge=1)
    # How long a request waits for a free audit slot before it fails with 503.
    audit_wait_seconds: float = Field(default=0.5, gt=0, le=30)
    # NORMAL: a committed record survives a crash of the process (kill -9), not a power cut;
    # FULL survives both but fsyncs every commit, which costs the origination p99 more
    # than 10% (bench/bench_service.py). Choose FULL where the disk's fsync is cheap.
    audit_synchronous: Literal["FULL", "NORMAL"] = "NORMAL"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    rate_limit_per_second: float = Field(default=50.0, gt=0)
    rate_limit_burst: int = Field(default=100, ge=1)
    json_logs: bool = True

    @field_validator("api_keys", mode="after")
    @classmethod
    def _hash_inline_keys(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        try:
            loaded = load_keys(value.get_secret_value(), None)
        except KeyConfigError as exc:
            raise ValueError(str(exc)) from None
        if info.data.get("mode") == "production":
            _refuse_weak_keys(loaded.demo, loaded.short)
        return SecretStr(",".join(f"sha256:{h}={r.value}" for h, r in loaded.hashes.items()))

    @model_validator(mode="after")
    def _production_is_locked_down(self) -> ServiceSettings:
        if self.api_keys_file is not None:
            try:
                loaded = load_keys(None, self.api_keys_file)
            except KeyConfigError as exc:
                raise ValueError(str(exc)) from None
            if self.mode == "production":
                _refuse_weak_keys(loaded.demo, loaded.short)
        if self.mode != "production":
            return self
        if not self.auth_enabled or not self.audit_enabled:
            raise ValueError("production mode needs authentication and the audit trail on")
        if not self.key_hashes():
            raise ValueError(
                "production mode needs API keys: set RISKGRAPH_API_KEYS_FILE "
                "(sha256:<hex>=role lines; `riskgraph keys new ROLE` makes one)"
            )
        return self

    def key_hashes(self) -> dict[str, Role]:
        """The configured keys as {sha256 hex: role}."""
        inline = self.api_keys.get_secret_value() if self.api_keys else None
        return load_keys(inline, self.api_keys_file).hashes


def _refuse_weak_keys(demo: int, short: int) -> None:
    if demo:
        raise ValueError("production mode refuses the generated demo key (rgdemo_…)")
    if short:
        raise ValueError("production mode refuses API keys shorter than 32 characters")


# --- responses -----------------------------------------------------------------------------
def _error_message(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[Message, Message]:
    body = json.dumps(ErrorPublic(code=code, message=message, details=details).model_dump())
    payload = body.encode()
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *(headers or []),
        ],
    }
    return start, {"type": "http.response.body", "body": payload}


async def _send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    start, body = _error_message(status, code, message, None, headers)
    await send(start)
    await send(body)


def flat_routes(routes: list[BaseRoute]) -> list[Any]:
    """Every route with its full template, included routers flattened (recent FastAPI keeps
    an included router as one nested route)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before included routers were nested: already flat
        return list(routes)
    return list(iter_route_contexts(routes))


def match_route(routes: list[Any], scope: Scope) -> tuple[str | None, bool, dict[str, Any]]:
    """The template of the route a request goes to, whether it matched in full (else only
    the path matched, with another method), and its path parameters."""
    partial: str | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            return str(route.path), True, dict(child.get("path_params", {}))
        if match == Match.PARTIAL and partial is None:
            partial = str(route.path)
    return partial, False, {}


class _RouteTable:
    """The app's flattened routes, rebuilt when routes are added."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._size = -1
        self._routes: list[Any] = []

    def __call__(self) -> list[Any]:
        routes = self._app.router.routes
        if len(routes) != self._size:
            self._routes, self._size = flat_routes(routes), len(routes)
        return self._routes


# --- the middleware ------------------------------------------------------------------------
@dataclass(slots=True)
class ServiceLayer:
    """What the middleware needs, built once by `install_service_layer`."""

    settings: ServiceSettings
    routes: Callable[[], list[Any]]
    keys: KeyRing | None
    limiter: RateLimiter
    audit: AuditLog | None
    metrics: ServiceMetrics
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Exchange:
    """One request as it goes through the layer."""

    method: str
    request_id: str
    route: str = "<unmatched>"
    status: int = 0
    principal: Principal | None = None
    started: bool = False
    closed: bool = False
    digest: Any = field(default_factory=hashlib.sha256)
    buffered: list[Message] | None = None


class _BodyTooLarge(Exception):
    """The request body went past `max_body_bytes` while it was being read."""


class _Disconnected(Exception):
    """The client went away before the request body was complete."""


_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REQUEST_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            # Taken from the caller only when it is safe to log and echo back.
            if 0 < len(text) <= 64 and set(text) <= _REQUEST_ID_CHARS:
                return text
    return uuid.uuid4().hex


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _body_parameters(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}


def _reason_codes(messages: list[Message]) -> list[str] | None:
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    try:
        flags = json.loads(body).get("decision_flags")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    if not isinstance(flags, list):
        return None
    return [str(f.get("code")) for f in flags if isinstance(f, dict)]


class ServiceMiddleware:
    """The service layer as one ASGI middleware (see the module docstring for the order)."""

    def __init__(self, app: ASGIApp, layer: ServiceLayer) -> None:
        self.app = app
        self.layer = layer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        exchange = _Exchange(method=scope["method"], request_id=_request_id(headers))
        request_id_header = (b"x-request-id", exchange.request_id.encode())
        is_api = scope["path"].startswith("/v1/")

        async def send_out(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                extra = [request_id_header]
                if is_api:
                    # Bank data must not sit in browser or proxy caches.
                    extra += [
                        (b"cache-control", b"no-store"),
                        (b"x-content-type-options", b"nosniff"),
                    ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        metrics = self.layer.metrics
        metrics.in_flight.inc()
        try:
            await self._dispatch(scope, receive, send_out, exchange)
        except Exception:
            exchange.status = 500
            raise
        finally:
            metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            metrics.observe(exchange.method, exchange.route, exchange.status, seconds)
            principal = exchange.principal
            access_log.info(
                "request",
                extra={
                    "method": exchange.method,
                    "route": exchange.route,
                    "status": exchange.status,
                    "duration_ms": round(seconds * 1000, 3),
                    "key_id": principal.key_id if principal else None,
                    "role": principal.role.value if principal else None,
                    "request_id": exchange.request_id,
                },
            )

    async def _deny(self, send: Send, status: int, code: str, message: str, **extra: str) -> None:
        self.layer.metrics.denied.labels(code).inc()
        headers = [(k.replace("_", "-").encode(), v.encode()) for k, v in extra.items()]
        await _send_error(send, status, code, message, headers)

    async def _dispatch(
        self, scope: Scope, receive: Receive, send: Send, exchange: _Exchange
    ) -> None:
        layer = self.layer
        template, full, path_params = match_route(layer.routes(), scope)
        if template is not None:
            exchange.route = template
        if full and template is not None and is_public(exchange.method, template):
            await self.app(scope, receive, send)
            return
        roles = allowed_roles(exchange.method, template) if full and template else None
        principal = self._authenticate(scope)
        if principal is None:
            await self._deny(
                send,
                401,
                "unauthenticated",
                "an API key is needed (X-API-Key header)",
                www_authenticate='Bearer realm="riskgraph"',
            )
            return
        exchange.principal = principal
        if full and roles is None:
            security_log.error(
                "route_not_in_policy", extra={"method": exchange.method, "route": template}
            )
            await self._deny(
                send, 403, "route_not_in_policy", "this endpoint is not open to any role"
            )
            return
        if roles is not None and principal.role not in roles:
            await self._deny(
                send,
                403,
                "forbidden",
                f"the {principal.role.value} role may not call this endpoint",
            )
            return
        wait = layer.limiter.acquire(principal.key_id)
        if wait > 0:
            await self._deny(
                send,
                429,
                "rate_limited",
                "too many requests for this key",
                retry_after=retry_after_header(wait),
            )
            return
        try:
            receive, body = await self._buffered_body(scope, receive)
        except _BodyTooLarge:
            limit = layer.settings.max_body_bytes
            await self._deny(send, 413, "body_too_large", f"the request body exceeds {limit} bytes")
            return
        except _Disconnected:
            return
        audit = layer.audit if full and template and template.startswith("/v1/") else None
        if audit is None:
            await self._call_with_timeout(scope, receive, send, exchange)
            return
        try:
            await audit.reserve(layer.settings.audit_wait_seconds)
        except AuditUnavailable:
            layer.metrics.audit_unavailable.inc()
            await self._deny(
                send,
                503,
                "audit_unavailable",
                "the audit trail cannot take records; retry later",
                retry_after="1",
            )
            return
        await self._audited(scope, receive, send, exchange, audit, path_params, body)

    def _authenticate(self, scope: Scope) -> Principal | None:
        keys = self.layer.keys
        if keys is None:
            return ANONYMOUS_ADMIN
        key = presented_key(scope["headers"])
        return keys.authenticate(key) if key else None

    async def _buffered_body(self, scope: Scope, receive: Receive) -> tuple[Receive, bytes]:
        """Read the body (bounded) so it can be checked and audited, then replay it."""
        limit = self.layer.settings.max_body_bytes
        has_body = scope["method"] in _BODY_METHODS
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    raise _BodyTooLarge
                has_body = has_body or int(value) > 0
            elif name == b"transfer-encoding":
                has_body = True
        if not has_body:
            return receive, b""
        body = await _read_body(receive, limit)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay, body

    async def _call_with_timeout(
        self, scope: Scope, receive: Receive, send: Send, exchange: _Exchange
    ) -> None:
        async def capture(message: Message) -> None:
            if exchange.closed:
                return  # the request timed out; late parts of the response are dropped
            if message["type"] == "http.response.start":
                exchange.started = True
                exchange.status = message["status"]
            elif message["type"] == "http.response.body":
                exchange.digest.update(message.get("body", b""))
            if exchange.buffered is not None:
                exchange.buffered.append(message)
            else:
                await send(message)

        # A task, not `asyncio.timeout`: a sync endpoint runs in a worker thread, and
        # cancelling the await would wait for that thread to finish.
        task = asyncio.ensure_future(self.app(scope, receive, capture))
        done, _ = await asyncio.wait({task}, timeout=self.layer.settings.request_timeout_seconds)
        if task in done:
            task.result()
            return
        exchange.closed = True
        task.cancel()
        task.add_done_callback(_consume)
        exchange.status = 503
        if not exchange.started or exchange.buffered is not None:
            exchange.buffered = None
            seconds = self.layer.settings.request_timeout_seconds
            await self._deny(
                send,
                503,
                "request_timeout",
                f"the request took longer than {seconds:g} s",
                retry_after="5",
            )

    async def _audited(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        exchange: _Exchange,
        audit: AuditLog,
        path_params: dict[str, Any],
        body: bytes,
    ) -> None:
        layer = self.layer
        decision = (exchange.method, exchange.route) in DECISION_ROUTES
        if decision:
            exchange.buffered = []
        principal = exchange.principal
        assert principal is not None
        started = time.perf_counter()
        entry: dict[str, Any] = {
            "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
            "request_id": exchange.request_id,
            "key_id": principal.key_id,
            "role": principal.role.value,
            "method": exchange.method,
            "route": exchange.route,
            "path_params": path_params,
            "query": [list(p) for p in parse_qsl(scope["query_string"].decode("latin-1"))],
            "body": _body_parameters(body),
            "versions": layer.versions,
        }
        submitted = False
        try:
            await self._call_with_timeout(scope, receive, send, exchange)
            buffered = exchange.buffered
            entry.update(
                status=exchange.status,
                response_sha256=exchange.digest.hexdigest() if exchange.started else None,
                reason_codes=_reason_codes(buffered) if decision and buffered else None,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
            layer.metrics.audit_records.inc()
            if buffered is None:
                submitted = True
                audit.submit(entry)
                return
            submitted = True
            try:
                # An unaudited credit decision is not served.
                await audit.append(entry)
            except AuditUnavailable:
                layer.metrics.audit_unavailable.inc()
                await self._deny(
                    send,
                    503,
                    "audit_unavailable",
                    "the decision could not be recorded in the audit trail; retry later",
                    retry_after="1",
                )
                exchange.status = 503
                return
            for message in buffered:
                await send(message)
        except BaseException:
            if not submitted:
                entry.update(
                    status=500,
                    response_sha256=None,
                    reason_codes=None,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                )
                audit.submit(entry)
            raise


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


# --- installation --------------------------------------------------------------------------
class ReadyPublic(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str]


def _readiness(app: FastAPI) -> ReadyPublic:
    from risk.index import INDEX_COLLECTION, INDEX_META_KEY

    checks: dict[str, str] = {}
    ready = True
    store = app.state.store
    try:
        store.schema_version()
        index_stored = store.get_document(INDEX_COLLECTION, INDEX_META_KEY) is not None
        checks["store"] = "ok"
    except Exception as exc:  # any failure to read means not ready; the probe says which
        checks["store"] = f"unreachable: {type(exc).__name__}"
        ready, index_stored = False, False
    holder = getattr(app.state, "risk_index", None)
    # RiskIndexHolder has no public "loaded" flag yet (asked of its owner).
    loaded = holder is not None and getattr(holder, "_index", None) is not None
    if loaded:
        checks["risk_index"] = "loaded"
    elif index_stored:
        checks["risk_index"] = "stored, not loaded yet"
        ready = False
    else:
        checks["risk_index"] = "not built"
    audit: AuditLog | None = getattr(app.state, "audit_log", None)
    if audit is None:
        checks["audit"] = "disabled"
    elif audit.healthy:
        checks["audit"] = "ok"
    else:
        checks["audit"] = f"failing: {audit.last_error or 'writer stopped'}"
        ready = False
    return ReadyPublic(status="ready" if ready else "not_ready", checks=checks)


_ERROR_RESPONSES = {
    401: "no API key, or an unknown one",
    403: "the key's role may not call this endpoint",
    429: "rate limit of the key exceeded (see Retry-After)",
    503: "timed out, or the audit trail cannot take records",
}


def _document_security(schema: dict[str, Any]) -> None:
    """Add the key schemes, each operation's roles and the layer's error responses."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {}).update(
        {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "Bearer": {"type": "http", "scheme": "bearer"},
        }
    )
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("ErrorPublic", ErrorPublic.model_json_schema())
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorPublic"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if is_public(method.upper(), path):
                operation["security"] = []
                continue
            roles = allowed_roles(method.upper(), path)
            operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
            operation["x-roles"] = sorted(r.value for r in roles or ())
            responses = operation.setdefault("responses", {})
            codes = dict(_ERROR_RESPONSES)
            if "requestBody" in operation:
                codes[413] = "the request body is too large"
            for status, description in codes.items():
                responses.setdefault(str(status), {"description": description, "content": error})


def install_service_layer(app: FastAPI, settings: ServiceSettings) -> None:
    """Put authentication, roles, limits, the audit trail, logs and metrics around an app
    built by `create_app`; call it last, before the app starts.

    Example:
        >>> app = create_app(store, params)  # doctest: +SKIP
        >>> install_service_layer(app, ServiceSettings())  # doctest: +SKIP
    """
    if getattr(app.state, "service", None) is not None:
        raise RuntimeError("the service layer is already installed on this app")
    if settings.json_logs:
        configure_json_logging()
    keys: KeyRing | None = None
    if settings.auth_enabled:
        keys = KeyRing(settings.key_hashes())
        if not keys:
            security_log.warning("no API keys configured: every protected endpoint answers 401")
    store = app.state.store
    audit: AuditLog | None = None
    if settings.audit_enabled:
        path = settings.audit_db or audit_path_for(store)
        if path is None:
            if settings.mode == "production":
                raise RuntimeError("production mode needs RISKGRAPH_AUDIT_DB for this store")
            logging.getLogger("riskgraph.audit").warning(
                "no file for the audit trail (in-memory store): records are kept in memory"
            )
        audit = AuditLog(
            path or ":memory:",
            capacity=settings.audit_queue_size,
            synchronous=settings.audit_synchronous,
        )
    metrics = ServiceMetrics()
    metrics.registry.register(JobCollector(store))
    layer = ServiceLayer(
        settings=settings,
        routes=_RouteTable(app),
        keys=keys,
        limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        audit=audit,
        metrics=metrics,
        versions=rules_version(),
    )
    app.state.service = layer
    app.state.audit_log = audit

    @app.get(
        "/ready",
        tags=["service"],
        response_model=ReadyPublic,
        responses={503: {"model": ReadyPublic, "description": "not ready"}},
    )
    def ready() -> JSONResponse:
        """Readiness: the store answers, a stored risk index is loaded, the audit trail
        writes."""
        result = _readiness(app)
        return JSONResponse(
            result.model_dump(), status_code=200 if result.status == "ready" else 503
        )

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(audit_router.router)
    app.add_middleware(ServiceMiddleware, layer=layer)

    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = base_openapi()
        _document_security(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    base_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: Any) -> AsyncIterator[Any]:
        try:
            async with base_lifespan(running) as state:
                yield state
        finally:
            if audit is not None:
                audit.close()

    app.router.lifespan_context = lifespan


# --- CLI: `riskgraph audit verify`, `riskgraph keys new ROLE` -------------------------------
audit_cli = typer.Typer(help="The audit trail.", no_args_is_help=True)
keys_cli = typer.Typer(help="API keys.", no_args_is_help=True)


# Callbacks keep each a command group (`audit verify`, `keys new`) even with one command.
@audit_cli.callback()
def _audit_group() -> None:
    """The audit trail."""


@keys_cli.callback()
def _keys_group() -> None:
    """API keys."""


@audit_cli.command("verify")
def audit_verify_command(
    db: Annotated[
        Path, typer.Option("--db", envvar="RISKGRAPH_DB", help="The store the trail is beside.")
    ] = Path("riskgraph.db"),
    audit_db: Annotated[
        Path | None,
        typer.Option("--audit-db", envvar="RISKGRAPH_AUDIT_DB", help="The audit file itself."),
    ] = None,
    expect_seq: Annotated[
        int | None, typer.Option(help="Head sequence logged earlier (finds a cut-off end).")
    ] = None,
    expect_hash: Annotated[str | None, typer.Option(help="Head hash logged earlier.")] = None,
) -> None:
    """Walk the hash chain of the audit trail; exit 1 when a record was modified, deleted or
    reordered."""
    path = audit_db or Path(f"{db}{AUDIT_SUFFIX}")
    anchor = (expect_seq, expect_hash) if expect_seq is not None and expect_hash else None
    result = verify_audit(path, anchor)
    if result.ok:
        typer.echo(
            f"ok: {result.records} records, head {result.head_seq} {result.head_hash} ({path})"
        )
        return
    typer.echo(f"audit trail {path} is NOT intact ({result.records} records read):", err=True)
    for problem in result.problems:
        typer.echo(f"  {problem}", err=True)
    raise typer.Exit(code=1)


@keys_cli.command("new")
def keys_new_command(
    role: Annotated[Role, typer.Argument(help="analyst | origination | admin")],
) -> None:
    """Make a new API key: the key (give it to its holder, it is not stored) and the line
    for the keys file (RISKGRAPH_API_KEYS_FILE)."""
    key = generate_api_key()
    typer.echo(f"key:           {key}")
    typer.echo(f"keys-file line: {key_file_line(key, role)}")


__all__ = [
    "ServiceSettings",
    "audit_cli",
    "generate_api_key",
    "install_service_layer",
    "keys_cli",
]
