"""The MCP server: the catalogue on the official SDK's low-level `Server`, for any transport.

`McpServer(services, caller_of)` builds one SDK server whose handlers run the catalogue's
bodies in worker threads (kernel work blocks; the event loop must not), each on a leased
runtime. ``caller_of(ctx)`` says who is calling: the token's `Principal` on HTTP, the local
operator on stdio; every tool and resource checks its role.

**Request spans.** The SDK makes an OpenTelemetry span per message; it is kept only with
``request_spans`` (an OTLP collector is configured: `Services.export_spans`).

**List changes.** A watcher polls the ledger (one head query when nothing changed) and,
when the set of served tools or the skills policy changed, tells every client: clients of
the handshake era (protocol 2025-11-25 and before, e.g. Claude Desktop) by
``notifications/tools/list_changed`` on their session's standalone stream, clients of the
2026-07-28 era on their ``subscriptions/listen`` streams. It catches versions added by
anyone: this server, the HTTP API, the CLI, another process. A call that may add a version
(create, mutate, solve, propose) checks at once when it returns.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.to_thread
import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.shared.exceptions import MCPError

from ouroboros.capabilities import tracing
from ouroboros.interfaces.http.services import Lease, Services
from ouroboros.interfaces.http.tokens import Principal, Role
from ouroboros.interfaces.json_input import check_parsed
from ouroboros.interfaces.mcp import catalogue
from ouroboros.interfaces.mcp.errors import CallError, describe
from ouroboros.kernel.errors import OuroError
from ouroboros.storage.ledger import LedgerUnavailable

log = logging.getLogger("ouroboros.mcp")

CallerOf = Callable[[ServerRequestContext[Any, Any]], Principal]
#: Handshake-era sessions kept for notifications (a closed one just drops them; the oldest
#: is forgotten past the cap).
MAX_SESSIONS = 256
INSTRUCTIONS = (
    "Ouroboros: governed, versioned WASM tools with tests and lineage. Find a tool with "
    "search_tools, read its input schema with describe_tool, run it with run_tool (or call it "
    "by its own name). create_tool and mutate_tool register new versions through the kernel's "
    "gates; propose_patch files a change for a human to approve.")


def _result(value: Any) -> types.CallToolResult:
    structured = value if isinstance(value, dict) else {"result": value}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=catalogue.to_json_text(value))],
        structured_content=structured)


def _error(error: CallError) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=error.text())],
                                structured_content=error.to_json(), is_error=True)


class SkillTools:
    """The served skills as MCP tools, rebuilt only when the ledger says they changed."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._lock = threading.Lock()
        self._key: Any = None
        self._tools: dict[str, tuple[types.Tool, dict[str, Any], dict[str, Any]]] = {}
        self._by_seq: tuple[tuple[str, int], Any] | None = None  # ledger position -> signature

    def signature(self, lease: Lease | None = None) -> Any:
        """What the served set depends on: every tool's current version and the policy."""
        if lease is None:
            with self.services.lease() as own:
                return self.signature(own)
        from ouroboros.capabilities.skills.evidence import POLICY_TARGET

        state = lease.rt.refresh()
        seen = self._by_seq
        if seen is not None and seen[0] == (state.ledger_id, state.seq):
            return seen[1]  # nothing was appended since: the same set (no scan per call)
        values = state.values
        key = (tuple(sorted((t, (v or {}).get("fingerprint")) for t, v in values.items()
                            if t.startswith("skills/"))),
               catalogue.to_json_text(values.get(POLICY_TARGET)))
        self._by_seq = ((state.ledger_id, state.seq), key)
        return key

    def current(self, lease: Lease | None = None
                ) -> dict[str, tuple[types.Tool, dict[str, Any], dict[str, Any]]]:
        """name → (Tool, input schema, output schema); on ``lease`` when given."""
        key = self.signature(lease)
        with self._lock:
            if key == self._key:
                return self._tools
        tools = self._build(lease)
        with self._lock:
            self._key, self._tools = key, tools
        return tools

    def cached(self) -> dict[str, tuple[types.Tool, dict[str, Any], dict[str, Any]]]:
        """The set as last built (no ledger read: for callers on the event loop)."""
        with self._lock:
            return self._tools

    def _build(self, lease: Lease | None
               ) -> dict[str, tuple[types.Tool, dict[str, Any], dict[str, Any]]]:
        # on the caller's lease when it holds one: a second from the pool while holding the
        # first could wait on a pool that concurrent calls have emptied the same way
        if lease is None:
            with self.services.lease() as own:
                return self._build(own)
        from ouroboros.capabilities.skills.export import as_mcp
        from ouroboros.capabilities.skills.serving import status

        out = {}
        store = lease.skills()
        for v in store.list():
            if v.tool_id in catalogue.BUILTINS or status(store, v) == "unproven":
                continue
            schemas = store.schemas(v)
            tool = types.Tool.model_validate(as_mcp(v.tool_id, v.description, schemas))
            out[v.tool_id] = (tool, schemas.input, schemas.output)
        return out


class McpServer:
    """One SDK `Server` over a workspace's `Services`; see the module docstring."""

    def __init__(self, services: Services, caller_of: CallerOf, *, poll: float = 1.0,
                 name: str = "ouroboros", request_spans: bool = False) -> None:
        from importlib.metadata import PackageNotFoundError, version

        self.services = services
        self.caller_of = caller_of
        self.poll = poll
        self.skills = SkillTools(services)
        self.bus = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.bus)
        self._sessions: collections.OrderedDict[int, ServerSession] = collections.OrderedDict()
        self._seen: Any = None
        self._check_now = anyio.Event()
        self._builtin_schemas: dict[str, dict[str, Any]] = {}
        try:
            number = version("ouroboros")
        except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
            number = "0"
        self.server: Server[Any] = Server(
            name, version=number, title="Ouroboros", instructions=INSTRUCTIONS,
            lifespan=self._lifespan,
            on_list_tools=self._list_tools, on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_templates,
            on_read_resource=self._read_resource,
            on_subscriptions_listen=self.listen,
            get_tool_input_schema=self._input_schema)
        if not request_spans:
            # the SDK's span per message: kept only when spans leave the process (see
            # `Services.export_spans`); the store would drop it
            from mcp.server._otel import OpenTelemetryMiddleware

            self.server.middleware = [m for m in self.server.middleware
                                      if not isinstance(m, OpenTelemetryMiddleware)]
        self.server.add_notification_handler("notifications/initialized",
                                             types.NotificationParams, self._initialized)

    def initialization_options(self) -> Any:
        from mcp.server import NotificationOptions

        return self.server.create_initialization_options(
            NotificationOptions(tools_changed=True))

    # -- list changes -------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lifespan(self, _: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        self._seen = await anyio.to_thread.run_sync(self.skills.signature)
        await anyio.to_thread.run_sync(self.skills.current)  # what `_input_schema` reads
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._watch)
            try:
                yield {}
            finally:
                self.listen.close()
                tasks.cancel_scope.cancel()

    async def _watch(self) -> None:
        while True:
            with anyio.move_on_after(self.poll):
                await self._check_now.wait()
            self._check_now = anyio.Event()
            try:
                await self.check_for_changes()
            except LedgerUnavailable as e:  # a frozen or locked ledger: not a bug, one line
                log.warning("MCP list-change check failed: %s", e.message)
            except Exception:  # a busy ledger now is no reason to stop watching
                log.warning("MCP list-change check failed", exc_info=True)

    async def check_for_changes(self) -> bool:
        """Notify every client if the served tools changed since the last check."""
        seen = await anyio.to_thread.run_sync(self.skills.signature)
        if seen == self._seen:
            return False
        self._seen = seen
        await anyio.to_thread.run_sync(self.skills.current)  # what `_input_schema` reads
        await self.bus.publish(ToolsListChanged())
        for session in list(self._sessions.values()):
            await session.send_tool_list_changed()  # best effort: never raises
        return True

    async def _initialized(self, ctx: ServerRequestContext[Any, Any],
                           _: types.NotificationParams) -> None:
        """A handshake-era client finished its handshake: remember its session."""
        self._sessions[id(ctx.session)] = ctx.session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)

    # -- tools --------------------------------------------------------------------------
    def _input_schema(self, name: str) -> dict[str, Any] | None:
        """A tool's MCP input schema for the SDK's ``Mcp-Param-*`` header check of a
        2026-era call. Without it the SDK runs the whole ``tools/list`` handler (a ledger
        read, every skill's definition) before each call; on the event loop, so from
        memory: the skills as last built (kept current by the watcher), None for one not
        seen yet (the check is skipped; the call validates its arguments anyway)."""
        builtin = catalogue.BUILTINS.get(name)
        if builtin is not None:
            return self._builtin_schemas.setdefault(name, builtin.args.model_json_schema())
        entry = self.skills.cached().get(name)
        return entry[0].input_schema if entry is not None else None

    async def _list_tools(self, ctx: ServerRequestContext[Any, Any],
                          _: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        caller = self._caller(ctx)
        tools = [types.Tool(name=b.name, description=b.description,
                            input_schema=b.args.model_json_schema(),
                            annotations=types.ToolAnnotations(
                                read_only_hint=b.read_only, open_world_hint=False))
                 for b in catalogue.BUILTINS.values() if caller.role.allows(b.needs)]
        if caller.role.allows(Role.submit):
            skills = await anyio.to_thread.run_sync(self.skills.current)
            tools += [tool for tool, _, _ in skills.values()]
        return types.ListToolsResult(tools=tools)

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any],
                         params: types.CallToolRequestParams) -> types.CallToolResult:
        try:
            caller = self._caller(ctx)
            tracing.set_caller(caller.name)  # the runs this call makes are the token's
            name = params.name
            arguments = check_parsed(params.arguments or {}, "the arguments")
            builtin = catalogue.BUILTINS.get(name)
            if builtin is not None:
                self._authorize(caller, builtin.needs, name)
                args = builtin.args.model_validate(arguments)
                value = await anyio.to_thread.run_sync(
                    functools.partial(builtin.run, self.services, args, caller.name))
                if not builtin.read_only:
                    self._check_now.set()  # it may have added a version: tell clients soon
                return _result(value)
            self._authorize(caller, Role.submit, name)
            return await self._call_skill(name, arguments)
        except MCPError:
            raise
        except Exception as e:  # every failure of a call is the model's to read
            return _error(describe(e))

    async def _call_skill(self, name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        from ouroboros.capabilities.skills.export import structured

        # one hop to a worker thread for the lookup and the run: the hop is most of the cost
        output, output_schema = await anyio.to_thread.run_sync(
            functools.partial(self._run_served, name, arguments))
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=catalogue.to_json_text(output))],
            structured_content=structured(output, output_schema))

    def _run_served(self, name: str, arguments: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        from ouroboros.capabilities.skills.export import input_of
        from ouroboros.kernel.errors import NotFound

        with self.services.lease() as lease:  # one runtime for the lookup and the run
            skills = self.skills.current(lease)
            if name not in skills:
                raise NotFound(f"no tool {name[:80]!r} is served here",
                               "list_tools names every tool; run_tool runs an unproven one")
            _, input_schema, output_schema = skills[name]
            out = catalogue.run_on(lease, name, input_of(arguments, input_schema))
        return out["output"], output_schema

    # -- resources ----------------------------------------------------------------------
    async def _list_resources(self, ctx: ServerRequestContext[Any, Any],
                              _: types.PaginatedRequestParams | None
                              ) -> types.ListResourcesResult:
        self._resource_caller(ctx)
        targets = await anyio.to_thread.run_sync(catalogue.state_targets, self.services)
        json_type = "application/json"
        resources = [
            types.Resource(uri="ouro://state", name="state", mime_type=json_type,
                           description="Every target's name, the seq and the state hash"),
            types.Resource(uri="ouro://log", name="log", mime_type=json_type,
                           description="The last ledger events (ouro://log?since=&limit=&kind=)"),
            types.Resource(uri="ouro://checkpoint", name="checkpoint", mime_type=json_type,
                           description="The latest signed checkpoint (C2SP signed note)"),
            *(types.Resource(uri=f"ouro://state/{t}", name=t, mime_type=json_type,
                             description=f"The value of {t} and its content hash")
              for t in targets)]
        return types.ListResourcesResult(resources=resources)

    async def _list_templates(self, ctx: ServerRequestContext[Any, Any],
                              _: types.PaginatedRequestParams | None
                              ) -> types.ListResourceTemplatesResult:
        self._resource_caller(ctx)
        return types.ListResourceTemplatesResult(resource_templates=[
            types.ResourceTemplate(uri_template="ouro://state/{+target}", name="target",
                                   mime_type="application/json",
                                   description="One target's value and content hash"),
            types.ResourceTemplate(uri_template="ouro://log{?since,limit,kind}", name="log",
                                   mime_type="application/json",
                                   description="Ledger events from a seq, of one kind"),
            types.ResourceTemplate(uri_template="ouro://proofs/inclusion/{seq}",
                                   name="inclusion_proof", mime_type="application/json",
                                   description="A proof that event SEQ is in the log (its "
                                   "`file` checks with `ouro proof check`)"),
            types.ResourceTemplate(uri_template="ouro://proofs/consistency{?old,new}",
                                   name="consistency_proof", mime_type="application/json",
                                   description="A proof that the log at size NEW extends "
                                   "it at size OLD")])

    async def _read_resource(self, ctx: ServerRequestContext[Any, Any],
                             params: types.ReadResourceRequestParams
                             ) -> types.ReadResourceResult:
        self._resource_caller(ctx)
        try:
            value = await anyio.to_thread.run_sync(catalogue.read_resource, self.services,
                                                   params.uri)
        except Exception as e:  # a protocol error for resources (there is no isError)
            error = describe(e)
            raise MCPError(types.INVALID_PARAMS, f"{error.message}"
                           + (f" ({error.hint})" if error.hint else "")) from None
        return types.ReadResourceResult(contents=[types.TextResourceContents(
            uri=params.uri, mime_type="application/json", text=catalogue.to_json_text(value))])

    # -- who may ------------------------------------------------------------------------
    def _caller(self, ctx: ServerRequestContext[Any, Any]) -> Principal:
        return self.caller_of(ctx)

    def _resource_caller(self, ctx: ServerRequestContext[Any, Any]) -> Principal:
        caller = self._caller(ctx)
        if not caller.role.allows(Role.read):  # pragma: no cover - every role reads
            raise MCPError(types.INVALID_REQUEST, "this token may not read")
        return caller

    @staticmethod
    def _authorize(caller: Principal, needed: Role, name: str) -> None:
        if not caller.role.allows(needed):
            raise Forbidden(f"a {caller.role.value} token may not call {name[:80]}: it needs "
                            f"the {needed.value} role", "ask an admin for a token with that "
                            "role (`ouro token new NAME --role submit`)")


class Forbidden(OuroError):
    """The caller's role lacks the right (reported with the code ``forbidden``)."""

    code = "forbidden"
