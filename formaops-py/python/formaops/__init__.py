"""FormaOps in-process: versioned prompt templates, executions, validation and metrics.

>>> import formaops
>>> with formaops.Engine.open() as engine:  # in-memory store, mock provider
...     p = engine.create_prompt(
...         name="greet",
...         template="Say hello to {{ who }}",
...         variables=[{"name": "who", "type": "string", "required": True}],
...     )
...     result = engine.execute(p.id, {"who": "Ada"})
...     result.status
'COMPLETED'

The engine runs in Rust on a shared runtime; blocking calls release the GIL, and the
``*_async`` variants are asyncio awaitables. Python use does not authenticate: an engine
acts as one local user, created on first open (``DEFAULT_USER_EMAIL``, or the ``user=``
email), so prompts and executions of different ``user=`` values never see each other.

Results are dataclasses with attribute access and ``to_dict()``; inputs are plain dicts.
Every error is a :class:`FormaOpsError`.
"""

from __future__ import annotations

import asyncio
import os
import dataclasses
import functools
from dataclasses import dataclass
from datetime import datetime
from typing import (
    Any,
    AsyncIterator,
    ClassVar,
    Dict,
    Generic,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from . import _formaops
from ._formaops import (
    DEFAULT_USER_EMAIL,
    ConflictError,
    FormaOpsError,
    NotFoundError,
    ProviderError,
    UnavailableError,
    ValidationError,
    __version__,
)

__all__ = [
    "DEFAULT_USER_EMAIL",
    "ConflictError",
    "Engine",
    "Event",
    "Events",
    "Execution",
    "ExecutionError",
    "ExecutionMetrics",
    "FormaOpsError",
    "Message",
    "LabelMetrics",
    "MetricsReport",
    "MetricsSeries",
    "NotFoundError",
    "Page",
    "Percentiles",
    "Progress",
    "Prompt",
    "PromptMetrics",
    "PromptVersion",
    "ProviderError",
    "RuleOutcome",
    "SeriesPoint",
    "StatusCounts",
    "TokenTotals",
    "TokenUsage",
    "UnavailableError",
    "ValidationError",
    "ValidationVerdict",
    "VersionMetrics",
    "__version__",
]

R = TypeVar("R", bound="_Result")
T = TypeVar("T")


class _Result:
    """Builds dataclass results from the native module's dicts.

    The native dicts carry exactly the dataclass fields, which are the REST records' fields
    in snake_case (tests/test_api_surface.py checks both), so instances
    are filled directly; ``_nested`` names fields holding one nested result, ``_nested_lists``
    fields holding a list of them.
    """

    _nested: ClassVar[Dict[str, Type[_Result]]] = {}
    _nested_lists: ClassVar[Dict[str, Type[_Result]]] = {}

    @classmethod
    def _from(cls: Type[R], data: Dict[str, Any]) -> R:
        obj = object.__new__(cls)
        for name, kind in cls._nested.items():
            value = data.get(name)
            if value is not None:
                data[name] = kind._from(value)
        for name, kind in cls._nested_lists.items():
            values = data.get(name)
            if values is not None:
                data[name] = [kind._from(v) for v in values]
        obj.__dict__.update(data)
        return obj

    def to_dict(self) -> Dict[str, Any]:
        """The result as plain dicts and lists (deep copy)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload,no-any-return]


@dataclass
class TokenUsage(_Result):
    """Token counts of one completion; ``cached`` is part of ``input``, ``reasoning`` of ``output``."""

    input: int
    output: int
    cached: int
    reasoning: int
    total: int
    estimated: bool
    """True when the provider reported no usage and these are local estimates."""


@dataclass
class ExecutionMetrics(_Result):
    """Per-execution metrics. ``cost_usd`` is None when the model has no price (never a silent 0)."""

    latency_ms: int
    provider_latency_ms: int
    queue_ms: int
    token_usage: TokenUsage
    cost_usd: Optional[float]

    _nested: ClassVar[Dict[str, Type[_Result]]] = {"token_usage": TokenUsage}


@dataclass
class ExecutionError(_Result):
    """Why an execution failed: a stable ``code``, a message, whether it was transient, and
    what the reply carried that explains it (``details``: the refusal text, the tool calls,
    reasoning without an answer, the finish reason, an excerpt of an unreadable reply), when
    there was a reply."""

    code: str
    message: str
    transient: bool
    details: Optional[Dict[str, Any]] = None


@dataclass
class RuleOutcome(_Result):
    """The outcome of one output validation rule."""

    rule: str
    passed: bool
    reason: Optional[str] = None


@dataclass
class ValidationVerdict(_Result):
    """The verdict of all of a version's rules on one output."""

    passed: bool
    results: List[RuleOutcome]

    _nested_lists: ClassVar[Dict[str, Type[_Result]]] = {"results": RuleOutcome}


@dataclass
class Execution(_Result):
    """One execution of a pinned prompt version."""

    id: str
    user_id: str
    prompt_id: str
    prompt_version: int
    label: Optional[str]
    """The label the version was resolved through (``execute(..., label=)``); None when run
    by version number or the current version."""
    inputs: Dict[str, Any]
    priority: str
    status: str
    """QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED."""
    validate_output: bool
    finish_reason: Optional[str]
    """Why the model stopped on the last reply read: ``stop``, ``length`` (the output was cut
    at the token limit), ``content_filter``, ``tool_calls``, ...; None when no reply was read."""
    provider: str
    model: str
    output: Optional[str]
    validated_output: Any
    validation: Optional[ValidationVerdict]
    error: Optional[ExecutionError]
    metrics: Optional[ExecutionMetrics]
    attempts: int
    max_attempts: int
    retry_of: Optional[str]
    idempotency_key: Optional[str]
    created_at: datetime
    run_after: datetime
    deadline_at: datetime
    started_at: Optional[datetime]
    finished_at: Optional[datetime]

    _nested: ClassVar[Dict[str, Type[_Result]]] = {
        "validation": ValidationVerdict,
        "error": ExecutionError,
        "metrics": ExecutionMetrics,
    }

    @property
    def is_final(self) -> bool:
        """Whether the execution reached a final status (COMPLETED, FAILED or CANCELLED)."""
        return self.status in _formaops.FINAL_STATUSES


@dataclass
class PromptVersion(_Result):
    """One immutable version of a prompt."""

    prompt_id: str
    version: int
    template: str
    system_template: Optional[str]
    variables: List[Dict[str, Any]]
    validations: List[Dict[str, Any]]
    model: Dict[str, Any]
    created_at: datetime
    author: str


@dataclass
class Prompt(_Result):
    """A named prompt. ``version`` is the version read or written by the call that returned
    it (None in lists)."""

    id: str
    user_id: str
    name: str
    description: Optional[str]
    status: str
    """ACTIVE or ARCHIVED."""
    current_version: int
    created_at: datetime
    updated_at: datetime
    version: Optional[PromptVersion]

    _nested: ClassVar[Dict[str, Type[_Result]]] = {"version": PromptVersion}


@dataclass
class Message(_Result):
    """One rendered chat message."""

    role: str
    content: str


@dataclass
class Event(_Result):
    """One execution state change."""

    execution_id: str
    user_id: str
    kind: str
    """queued, running, retry_scheduled, partial, completed, failed or cancelled."""
    status: str
    attempt: int
    at: datetime
    error: Optional[ExecutionError] = None
    run_after: Optional[datetime] = None
    delta: Optional[str] = None

    _nested: ClassVar[Dict[str, Type[_Result]]] = {"error": ExecutionError}


@dataclass
class StatusCounts(_Result):
    queued: int
    running: int
    completed: int
    failed: int
    cancelled: int
    total: int


@dataclass
class Percentiles(_Result):
    """Latency percentiles in milliseconds; None when there is no sample."""

    p50: Optional[float]
    p95: Optional[float]
    p99: Optional[float]


@dataclass
class TokenTotals(_Result):
    input: int
    output: int
    cached: int
    total: int


_SUMMARY_NESTED: Dict[str, Type[_Result]] = {
    "counts": StatusCounts,
    "latency_ms": Percentiles,
    "provider_latency_ms": Percentiles,
    "tokens": TokenTotals,
}


@dataclass
class _MetricsSummary(_Result):
    """The aggregates every metrics record carries (the report, and each prompt, version and
    label in it). A record puts its own leading fields (the prompt, version or label and
    ``share``) in a key base listed after this one: dataclass fields run from the last base to
    the first, so each record's fields keep their order (key, then these, then its own)."""

    counts: StatusCounts
    latency_ms: Percentiles
    provider_latency_ms: Percentiles
    tokens: TokenTotals
    cost_usd: Optional[float]  # None when no execution in scope is priced
    unpriced_executions: int
    validated: int
    validation_passed: int
    validation_pass_rate: Optional[float]

    _nested: ClassVar[Dict[str, Type[_Result]]] = _SUMMARY_NESTED


@dataclass
class _PromptKey(_Result):
    prompt_id: str


@dataclass
class PromptMetrics(_MetricsSummary, _PromptKey):
    """One prompt's aggregates."""


@dataclass
class _VersionKey(_Result):
    version: int
    share: float


@dataclass
class VersionMetrics(_MetricsSummary, _VersionKey):
    """One version's aggregates within a prompt's report; ``share`` of the prompt's executions."""


@dataclass
class _LabelKey(_Result):
    label: Optional[str]
    share: float


@dataclass
class LabelMetrics(_MetricsSummary, _LabelKey):
    """One label's aggregates within a prompt's report (``label`` None: executions run by
    version number or the current version)."""


@dataclass
class _StartKey(_Result):
    start: datetime


@dataclass
class SeriesPoint(_MetricsSummary, _StartKey):
    """The final executions created in one bucket starting at ``start`` (``counts.queued`` and
    ``counts.running`` are always 0: live counts are in the report)."""


@dataclass
class MetricsSeries(_Result):
    """A time series in buckets of ``bucket`` (minute, hour, day) over ``[since, until)``;
    buckets without executions are left out."""

    bucket: str
    since: datetime
    until: datetime
    points: List[SeriesPoint]

    _nested_lists: ClassVar[Dict[str, Type[_Result]]] = {"points": SeriesPoint}


@dataclass
class _ReportWindow(_Result):
    since: Optional[datetime]
    until: Optional[datetime]


@dataclass
class MetricsReport(_MetricsSummary, _ReportWindow):
    """Aggregates of the user's executions (optionally of one prompt or version)."""

    queue_depth: int
    by_prompt: List[PromptMetrics]
    by_version: List[VersionMetrics]
    """With ``prompt_id``: per version of the prompt (empty otherwise)."""
    by_label: List[LabelMetrics]
    """With ``prompt_id``: per label the executions were resolved through (empty otherwise)."""

    _nested_lists: ClassVar[Dict[str, Type[_Result]]] = {
        "by_prompt": PromptMetrics,
        "by_version": VersionMetrics,
        "by_label": LabelMetrics,
    }


@dataclass
class Page(Generic[T]):
    """One page of a list, newest first; pass ``next_cursor`` as ``cursor`` for the next."""

    items: List[T]
    next_cursor: Optional[str]

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def _page(data: Dict[str, Any], kind: Type[R]) -> Page[R]:
    return Page([kind._from(d) for d in data["items"]], data["next_cursor"])


PromptRef = Union[str, Prompt]
"""A prompt id, or a :class:`Prompt`."""
ExecutionRef = Union[str, Execution]
"""An execution id, or an :class:`Execution`."""


def _prompt_id(ref: Union[str, Prompt, PromptVersion]) -> str:
    if isinstance(ref, Prompt):
        return ref.id
    if isinstance(ref, PromptVersion):
        return ref.prompt_id
    return ref


def _execution_id(ref: ExecutionRef) -> str:
    return ref.id if isinstance(ref, Execution) else ref


class Events:
    """Execution events as an iterator (GIL released while waiting) and an async iterator.

    Iteration ends when no event arrives within the ``timeout`` given to
    :meth:`Engine.events`, or, when following one execution, after its final event.
    """

    def __init__(self, native: _formaops.EventStream) -> None:
        self._native = native

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        return Event._from(next(self._native))

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return Event._from(await self._native.__anext__())

    def close(self) -> None:
        """Ends the iteration."""
        self._native.close()


class Progress:
    """An experiment's progress reports (dicts ``{"experiment_id", "status", "total",
    "done", "failed", "in_flight", "cost_usd"}``) as an iterator (GIL released while waiting)
    and an async iterator: one at once, then one on each change; iteration ends after the
    experiment is ``COMPLETED`` or ``CANCELLED`` with nothing in flight."""

    def __init__(self, native: _formaops.ProgressStream) -> None:
        self._native = native

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return self

    def __next__(self) -> Dict[str, Any]:
        return next(self._native)

    def __aiter__(self) -> AsyncIterator[Dict[str, Any]]:
        return self

    async def __anext__(self) -> Dict[str, Any]:
        return await self._native.__anext__()

    def close(self) -> None:
        """Ends the iteration."""
        self._native.close()


DatasetRef = Union[str, Mapping[str, Any]]
"""A dataset id, or a dataset dict (as returned by :meth:`Engine.create_dataset`)."""
ExperimentRef = Union[str, Mapping[str, Any]]
"""An experiment id, or an experiment dict (as returned by :meth:`Engine.start_experiment`)."""


def _ref_id(ref: Union[str, Mapping[str, Any]]) -> str:
    if isinstance(ref, Mapping) and isinstance(ref.get("id"), str):
        return str(ref["id"])
    return ref  # type: ignore[return-value]


def _dict_page(data: Dict[str, Any]) -> Page[Dict[str, Any]]:
    return Page(data["items"], data["next_cursor"])


def _path_arg(value: Any, name: str) -> Optional[str]:
    """A file path given as ``str`` or ``os.PathLike`` (``None`` when not given)."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
    raise TypeError(f"{name} must be a path (str or os.PathLike), not {type(value).__name__}")


class Engine:
    """A FormaOps engine in this process, acting as one local user.

    Open with :meth:`Engine.open`; close with :meth:`close` or use it as a context manager.
    One engine may be shared by many threads and asyncio tasks.
    """

    def __init__(self, native: _formaops.NativeEngine) -> None:
        self._native = native

    @classmethod
    def open(
        cls,
        url: str = "memory://",
        *,
        provider: str = "mock",
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        user: Optional[str] = None,
        mock_latency_ms: int = 0,
        mock_reply: Optional[str] = None,
        mock_faults: Optional[Sequence[Mapping[str, Any]]] = None,
        max_attempts: Optional[int] = None,
        execution_timeout: Optional[float] = None,
        concurrency: Optional[int] = None,
        prices_file: Optional[Union[str, "os.PathLike[str]"]] = None,
        durability: str = "strict",
    ) -> Engine:
        """Opens an engine.

        ``url``: ``memory://`` (nothing persisted); SQLite as in SQLAlchemy:
        ``sqlite:///relative/to.db`` (relative to the working directory),
        ``sqlite:////absolute/to.db`` (absolute), created if missing, or ``sqlite://`` (in
        memory); or ``postgres://user:pass@host/db``. Migrations run on open; error messages
        never show the password.
        ``provider``: ``mock`` (deterministic, no network: echoes the last user message, or
        answers ``mock_reply``; ``mock_latency_ms`` delays every call; ``mock_faults`` is a
        list such as ``[{"fault": "server_error", "first": 2}]``, with ``first``, ``calls``
        (call numbers) or ``rate`` + ``seed``, faults ``rate_limited`` (``retry_after``),
        ``server_error`` (``status``), ``timeout`` (``after`` seconds; default: until the
        attempt's deadline), ``connection``, ``malformed_response``,
        ``bad_request``, ``auth``) or ``openai`` (``api_key`` or ``OPENAI_API_KEY``; any
        OpenAI-compatible server with ``base_url``).
        ``user``: the email of the local user to act as (created on first use).
        ``max_attempts``, ``execution_timeout`` (seconds), ``concurrency`` (provider calls at
        once) override the engine defaults.
        ``prices_file``: a TOML file of model prices (USD per 1M tokens, with effective
        dates; the README's "Model prices") extending the built-in price table; a bad file
        raises ``ValidationError`` naming the file, the line and the fault.
        ``durability``: ``"strict"`` (default: an execution is answered only after its final
        state is flushed to disk) or ``"relaxed"`` (answered once committed: Postgres commits
        execution writes with ``synchronous_commit = off``, SQLite runs its writer with
        ``synchronous = NORMAL``; a crash of the database server or the machine can lose the
        last moments of execution records, never corrupt or duplicate them; the README's
        "Durability"). Another string raises ``ValidationError`` naming ``durability``.
        """
        return cls(
            _formaops.NativeEngine.open(
                url,
                provider=provider,
                base_url=base_url,
                api_key=api_key,
                user=user,
                mock_latency_ms=mock_latency_ms,
                mock_reply=mock_reply,
                mock_faults=mock_faults,
                max_attempts=max_attempts,
                execution_timeout=execution_timeout,
                concurrency=concurrency,
                prices_file=_path_arg(prices_file, "prices_file"),
                durability=durability,
            )
        )

    @classmethod
    async def open_async(
        cls,
        url: str = "memory://",
        *,
        provider: str = "mock",
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        user: Optional[str] = None,
        mock_latency_ms: int = 0,
        mock_reply: Optional[str] = None,
        mock_faults: Optional[Sequence[Mapping[str, Any]]] = None,
        max_attempts: Optional[int] = None,
        execution_timeout: Optional[float] = None,
        concurrency: Optional[int] = None,
        prices_file: Optional[Union[str, "os.PathLike[str]"]] = None,
        durability: str = "strict",
    ) -> Engine:
        """:meth:`open` without blocking the event loop (it runs in the default executor);
        the same options."""
        loop = asyncio.get_running_loop()
        opener = functools.partial(
            cls.open,
            url,
            provider=provider,
            base_url=base_url,
            api_key=api_key,
            user=user,
            mock_latency_ms=mock_latency_ms,
            mock_reply=mock_reply,
            mock_faults=mock_faults,
            max_attempts=max_attempts,
            execution_timeout=execution_timeout,
            concurrency=concurrency,
            prices_file=prices_file,
            durability=durability,
        )
        return await loop.run_in_executor(None, opener)

    # ----- lifecycle -----

    @property
    def user_id(self) -> str:
        """The id of the user this engine acts as."""
        return self._native.user_id

    @property
    def user_email(self) -> str:
        """The email of the user this engine acts as."""
        return self._native.user_email

    @property
    def closed(self) -> bool:
        return self._native.closed

    def close(self, *, grace: Optional[float] = None) -> None:
        """Stops the workers, letting running executions finish within the grace period
        (``grace`` seconds, by default the engine's 30). Calls still running then are
        abandoned: in a persistent store their leases expire and a later engine on the same
        store runs them again. Queued executions stay queued in a persistent store. Idempotent."""
        self._native.close(grace=grace)

    async def close_async(self, *, grace: Optional[float] = None) -> None:
        """:meth:`close` for asyncio (idempotent too)."""
        await self._native.close_async(grace=grace)

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: object
    ) -> None:
        # Leaving the block normally waits for running calls (the grace period); leaving it
        # because of an exception (Ctrl-C's KeyboardInterrupt included) does not wait.
        self.close(grace=0 if exc_type is not None else None)

    def __repr__(self) -> str:
        return f"Engine(user={self.user_email!r}, closed={self.closed})"

    def health(self) -> Dict[str, Any]:
        """Store reachability, queue depth, providers and their load."""
        result: Dict[str, Any] = self._native.health()
        return result

    async def health_async(self) -> Dict[str, Any]:
        """:meth:`health` for asyncio."""
        result: Dict[str, Any] = await self._native.health_async()
        return result

    # ----- prompts -----

    def create_prompt(
        self,
        name: str,
        template: str,
        *,
        description: Optional[str] = None,
        system_template: Optional[str] = None,
        variables: Optional[Sequence[Mapping[str, Any]]] = None,
        validations: Optional[Sequence[Mapping[str, Any]]] = None,
        model: Union[str, Mapping[str, Any], None] = None,
        parameters: Optional[Mapping[str, Any]] = None,
        provider: Optional[str] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> Prompt:
        """Creates a prompt with version 1, labelled ``production`` unless ``labels`` says
        otherwise (``[]``: no label).

        ``variables``: dicts ``{"name", "type", "required", "default_value", "description",
        "values", "schema", "max_length"}`` (``type``: string, number, integer, boolean,
        enum, json). ``validations``: dicts such as ``{"type": "json"}``,
        ``{"type": "regex", "pattern": ...}``, ``{"type": "max_length", "value": 200}``,
        ``{"type": "json_schema", "schema": {...}, "strict": "auto"}`` (``strict``: ``"auto"``,
        the default, ``True`` or ``False``; see the README's "Strict structured output").
        ``model``: a model name or ``{"model", "provider", "parameters"}``; ``parameters``:
        ``{"temperature", "top_p", "max_completion_tokens", "stop", "seed"}``.
        Raises :class:`ValidationError` listing every problem, :class:`ConflictError` when an
        active prompt has this name.
        """
        return Prompt._from(
            self._native.create_prompt(
                name,
                template,
                description=description,
                system_template=system_template,
                variables=variables,
                validations=validations,
                model=model,
                parameters=parameters,
                provider=provider,
                labels=labels,
            )
        )

    async def create_prompt_async(
        self,
        name: str,
        template: str,
        *,
        description: Optional[str] = None,
        system_template: Optional[str] = None,
        variables: Optional[Sequence[Mapping[str, Any]]] = None,
        validations: Optional[Sequence[Mapping[str, Any]]] = None,
        model: Union[str, Mapping[str, Any], None] = None,
        parameters: Optional[Mapping[str, Any]] = None,
        provider: Optional[str] = None,
        labels: Optional[Sequence[str]] = None,
    ) -> Prompt:
        """:meth:`create_prompt` for asyncio."""
        return Prompt._from(
            await self._native.create_prompt_async(
                name,
                template,
                description=description,
                system_template=system_template,
                variables=variables,
                validations=validations,
                model=model,
                parameters=parameters,
                provider=provider,
                labels=labels,
            )
        )

    def update_prompt(
        self,
        prompt_id: PromptRef,
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
        template: Optional[str] = None,
        system_template: Optional[str] = None,
        variables: Optional[Sequence[Mapping[str, Any]]] = None,
        validations: Optional[Sequence[Mapping[str, Any]]] = None,
        model: Union[str, Mapping[str, Any], None] = None,
        parameters: Optional[Mapping[str, Any]] = None,
        provider: Optional[str] = None,
        expected_version: Optional[int] = None,
    ) -> Prompt:
        """Writes a new version; omitted fields carry over from the current one.
        ``expected_version``: fail with :class:`ConflictError` unless it is still current."""
        return Prompt._from(
            self._native.update_prompt(
                _prompt_id(prompt_id),
                name=name,
                description=description,
                template=template,
                system_template=system_template,
                variables=variables,
                validations=validations,
                model=model,
                parameters=parameters,
                provider=provider,
                expected_version=expected_version,
            )
        )

    async def update_prompt_async(
        self,
        prompt_id: PromptRef,
        *,
        name: Optional[str] = None,
        description: Optional[str] = None,
        template: Optional[str] = None,
        system_template: Optional[str] = None,
        variables: Optional[Sequence[Mapping[str, Any]]] = None,
        validations: Optional[Sequence[Mapping[str, Any]]] = None,
        model: Union[str, Mapping[str, Any], None] = None,
        parameters: Optional[Mapping[str, Any]] = None,
        provider: Optional[str] = None,
        expected_version: Optional[int] = None,
    ) -> Prompt:
        """:meth:`update_prompt` for asyncio."""
        return Prompt._from(
            await self._native.update_prompt_async(
                _prompt_id(prompt_id),
                name=name,
                description=description,
                template=template,
                system_template=system_template,
                variables=variables,
                validations=validations,
                model=model,
                parameters=parameters,
                provider=provider,
                expected_version=expected_version,
            )
        )

    def get_prompt(
        self, prompt_id: PromptRef, version: Optional[int] = None, *, label: Optional[str] = None
    ) -> Prompt:
        """The prompt with the given version (the current one by default, or the one ``label``
        points at; ``version`` and ``label`` are exclusive) as ``.version``."""
        return Prompt._from(self._native.get_prompt(_prompt_id(prompt_id), version, label=label))

    async def get_prompt_async(
        self, prompt_id: PromptRef, version: Optional[int] = None, *, label: Optional[str] = None
    ) -> Prompt:
        """:meth:`get_prompt` for asyncio."""
        return Prompt._from(await self._native.get_prompt_async(_prompt_id(prompt_id), version, label=label))

    # ----- labels -----

    def set_label(self, prompt_id: PromptRef, name: str, version: int) -> Dict[str, Any]:
        """Points label ``name`` at ``version`` (create, promote, roll back); every move is
        recorded. ``latest`` is built in and cannot be set. With the promotion guard on, a move
        of ``production`` that would refuse inputs the current production version accepts
        raises :class:`ValidationError` with the reasons."""
        result: Dict[str, Any] = self._native.set_label(_prompt_id(prompt_id), name, version)
        return result

    async def set_label_async(self, prompt_id: PromptRef, name: str, version: int) -> Dict[str, Any]:
        """:meth:`set_label` for asyncio."""
        result: Dict[str, Any] = await self._native.set_label_async(_prompt_id(prompt_id), name, version)
        return result

    def delete_label(self, prompt_id: PromptRef, name: str) -> None:
        """Deletes a label (recorded in the history)."""
        self._native.delete_label(_prompt_id(prompt_id), name)

    async def delete_label_async(self, prompt_id: PromptRef, name: str) -> None:
        """:meth:`delete_label` for asyncio."""
        await self._native.delete_label_async(_prompt_id(prompt_id), name)

    def labels(self, prompt_id: PromptRef) -> List[Dict[str, Any]]:
        """The prompt's labels ``{"name", "version", "updated_at", "updated_by"}``, the
        built-in ``latest`` first."""
        result: List[Dict[str, Any]] = self._native.labels(_prompt_id(prompt_id))
        return result

    async def labels_async(self, prompt_id: PromptRef) -> List[Dict[str, Any]]:
        """:meth:`labels` for asyncio."""
        result: List[Dict[str, Any]] = await self._native.labels_async(_prompt_id(prompt_id))
        return result

    def label_history(self, prompt_id: PromptRef, label: Optional[str] = None) -> List[Dict[str, Any]]:
        """Every move ``{"name", "from", "to", "actor", "at"}`` of the prompt's labels (of one
        label with ``label``), newest first."""
        result: List[Dict[str, Any]] = self._native.label_history(_prompt_id(prompt_id), label=label)
        return result

    async def label_history_async(self, prompt_id: PromptRef, label: Optional[str] = None) -> List[Dict[str, Any]]:
        """:meth:`label_history` for asyncio."""
        result: List[Dict[str, Any]] = await self._native.label_history_async(_prompt_id(prompt_id), label=label)
        return result

    def set_promotion_guard(self, prompt_id: PromptRef, enabled: bool) -> None:
        """Turns the promotion guard of ``production`` on or off for this prompt."""
        self._native.set_promotion_guard(_prompt_id(prompt_id), enabled)

    async def set_promotion_guard_async(self, prompt_id: PromptRef, enabled: bool) -> None:
        """:meth:`set_promotion_guard` for asyncio."""
        await self._native.set_promotion_guard_async(_prompt_id(prompt_id), enabled)

    def diff(self, prompt_id: PromptRef, from_: Union[int, str], to: Union[int, str]) -> Dict[str, Any]:
        """What changed between two versions (numbers or labels): unified diffs in
        ``template`` and ``system_template``; ``variables`` / ``validations`` with
        ``added``, ``removed`` (and ``changed`` for variables); ``model`` as
        ``[{"field", "from", "to"}]``."""
        result: Dict[str, Any] = self._native.diff(_prompt_id(prompt_id), from_, to)
        return result

    async def diff_async(self, prompt_id: PromptRef, from_: Union[int, str], to: Union[int, str]) -> Dict[str, Any]:
        """:meth:`diff` for asyncio."""
        result: Dict[str, Any] = await self._native.diff_async(_prompt_id(prompt_id), from_, to)
        return result

    def list_prompts(
        self, *, status: Optional[str] = None, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Page[Prompt]:
        """The user's prompts, newest first (ACTIVE unless ``status="ARCHIVED"``)."""
        return _page(self._native.list_prompts(status=status, limit=limit, cursor=cursor), Prompt)

    async def list_prompts_async(
        self, *, status: Optional[str] = None, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Page[Prompt]:
        """:meth:`list_prompts` for asyncio."""
        return _page(await self._native.list_prompts_async(status=status, limit=limit, cursor=cursor), Prompt)

    def versions(
        self, prompt_id: PromptRef, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Page[PromptVersion]:
        """The prompt's versions, newest first."""
        return _page(self._native.versions(_prompt_id(prompt_id), limit=limit, cursor=cursor), PromptVersion)

    async def versions_async(
        self, prompt_id: PromptRef, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Page[PromptVersion]:
        """:meth:`versions` for asyncio."""
        data = await self._native.versions_async(_prompt_id(prompt_id), limit=limit, cursor=cursor)
        return _page(data, PromptVersion)

    def archive_prompt(self, prompt_id: PromptRef) -> Prompt:
        """Archives a prompt: history and executions stay readable, no new executions."""
        return Prompt._from(self._native.archive_prompt(_prompt_id(prompt_id)))

    async def archive_prompt_async(self, prompt_id: PromptRef) -> Prompt:
        """:meth:`archive_prompt` for asyncio."""
        return Prompt._from(await self._native.archive_prompt_async(_prompt_id(prompt_id)))

    def validate_inputs(
        self,
        prompt_id: Union[str, Prompt, PromptVersion],
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: Optional[int] = None,
    ) -> Dict[str, Any]:
        """The validated inputs with defaults filled in; :class:`ValidationError` listing
        every problem otherwise. Nothing is executed."""
        pid, version = _version_ref(prompt_id, version)
        result: Dict[str, Any] = self._native.validate_inputs(pid, inputs, version=version)
        return result

    async def validate_inputs_async(
        self,
        prompt_id: Union[str, Prompt, PromptVersion],
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: Optional[int] = None,
    ) -> Dict[str, Any]:
        """:meth:`validate_inputs` for asyncio."""
        pid, version = _version_ref(prompt_id, version)
        result: Dict[str, Any] = await self._native.validate_inputs_async(pid, inputs, version=version)
        return result

    def render(
        self,
        prompt_id: Union[str, Prompt, PromptVersion],
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: Optional[int] = None,
    ) -> List[Message]:
        """Validates inputs and renders the messages (system first, then user) without
        executing. A :class:`PromptVersion` selects that version."""
        pid, version = _version_ref(prompt_id, version)
        return [Message._from(m) for m in self._native.render(pid, inputs, version=version)]

    async def render_async(
        self,
        prompt_id: Union[str, Prompt, PromptVersion],
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: Optional[int] = None,
    ) -> List[Message]:
        """:meth:`render` for asyncio."""
        pid, version = _version_ref(prompt_id, version)
        return [Message._from(m) for m in await self._native.render_async(pid, inputs, version=version)]

    # ----- executions -----

    def execute(
        self,
        prompt_id: PromptRef,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: Optional[int] = None,
        priority: str = "NORMAL",
        validate_output: bool = False,
        idempotency_key: Optional[str] = None,
        label: Optional[str] = None,
    ) -> Execution:
        """Executes and waits for the final state, releasing the GIL meanwhile.

        A provider failure does not raise: the execution comes back FAILED with ``.error``.
        Raises :class:`ValidationError` for bad inputs (nothing is queued then).
        """
        return Execution._from(
            self._native.execute(
                _prompt_id(prompt_id),
                inputs,
                version=version,
                priority=priority,
                validate_output=validate_output,
                idempotency_key=idempotency_key,
                label=label,
            )
        )

    async def execute_async(
        self,
        prompt_id: PromptRef,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: Optional[int] = None,
        priority: str = "NORMAL",
        validate_output: bool = False,
        idempotency_key: Optional[str] = None,
        label: Optional[str] = None,
    ) -> Execution:
        """:meth:`execute` for asyncio."""
        data = await self._native.execute_async(
            _prompt_id(prompt_id),
            inputs,
            version=version,
            priority=priority,
            validate_output=validate_output,
            idempotency_key=idempotency_key,
            label=label,
        )
        return Execution._from(data)

    def submit(
        self,
        prompt_id: PromptRef,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: Optional[int] = None,
        priority: str = "NORMAL",
        validate_output: bool = False,
        idempotency_key: Optional[str] = None,
        label: Optional[str] = None,
    ) -> Execution:
        """Validates and queues; returns the QUEUED execution at once. Follow it with
        :meth:`wait` or :meth:`events`. A repeated ``idempotency_key`` returns the first
        execution."""
        return Execution._from(
            self._native.submit(
                _prompt_id(prompt_id),
                inputs,
                version=version,
                priority=priority,
                validate_output=validate_output,
                idempotency_key=idempotency_key,
                label=label,
            )
        )

    async def submit_async(
        self,
        prompt_id: PromptRef,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: Optional[int] = None,
        priority: str = "NORMAL",
        validate_output: bool = False,
        idempotency_key: Optional[str] = None,
        label: Optional[str] = None,
    ) -> Execution:
        """:meth:`submit` for asyncio."""
        data = await self._native.submit_async(
            _prompt_id(prompt_id),
            inputs,
            version=version,
            priority=priority,
            validate_output=validate_output,
            idempotency_key=idempotency_key,
            label=label,
        )
        return Execution._from(data)

    def wait(self, execution_id: ExecutionRef, timeout: Optional[float] = None) -> Execution:
        """Waits until the execution is final, or ``timeout`` seconds pass (then returns its
        current state)."""
        return Execution._from(self._native.wait(_execution_id(execution_id), timeout))

    async def wait_async(self, execution_id: ExecutionRef, timeout: Optional[float] = None) -> Execution:
        """:meth:`wait` for asyncio."""
        return Execution._from(await self._native.wait_async(_execution_id(execution_id), timeout))

    def retry(self, execution_id: ExecutionRef) -> Execution:
        """Re-runs a FAILED execution as a new one (``retry_of`` links them);
        :class:`ConflictError` for any other status."""
        return Execution._from(self._native.retry(_execution_id(execution_id)))

    async def retry_async(self, execution_id: ExecutionRef) -> Execution:
        """:meth:`retry` for asyncio."""
        return Execution._from(await self._native.retry_async(_execution_id(execution_id)))

    def cancel(self, execution_id: ExecutionRef) -> Execution:
        """Cancels a QUEUED execution; :class:`ConflictError` for any other status."""
        return Execution._from(self._native.cancel(_execution_id(execution_id)))

    async def cancel_async(self, execution_id: ExecutionRef) -> Execution:
        """:meth:`cancel` for asyncio."""
        return Execution._from(await self._native.cancel_async(_execution_id(execution_id)))

    def get_execution(self, execution_id: ExecutionRef) -> Execution:
        return Execution._from(self._native.get_execution(_execution_id(execution_id)))

    async def get_execution_async(self, execution_id: ExecutionRef) -> Execution:
        """:meth:`get_execution` for asyncio."""
        return Execution._from(await self._native.get_execution_async(_execution_id(execution_id)))

    def list_executions(
        self,
        *,
        status: Optional[str] = None,
        prompt_id: Optional[PromptRef] = None,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> Page[Execution]:
        """The user's executions, newest first. ``since``/``until`` are timezone-aware."""
        data = self._native.list_executions(
            status=status,
            prompt_id=_prompt_id(prompt_id) if prompt_id is not None else None,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        return _page(data, Execution)

    async def list_executions_async(
        self,
        *,
        status: Optional[str] = None,
        prompt_id: Optional[PromptRef] = None,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> Page[Execution]:
        """:meth:`list_executions` for asyncio."""
        data = await self._native.list_executions_async(
            status=status,
            prompt_id=_prompt_id(prompt_id) if prompt_id is not None else None,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        return _page(data, Execution)

    def metrics(
        self,
        *,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        prompt_id: Optional[PromptRef] = None,
        version: Optional[int] = None,
    ) -> MetricsReport:
        """Counts, latency percentiles, tokens, cost and validation pass rate of the user's
        executions created in ``[since, until)``, optionally of one prompt (and version)."""
        data = self._native.metrics(
            since=since,
            until=until,
            prompt_id=_prompt_id(prompt_id) if prompt_id is not None else None,
            version=version,
        )
        return MetricsReport._from(data)

    async def metrics_async(
        self,
        *,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        prompt_id: Optional[PromptRef] = None,
        version: Optional[int] = None,
    ) -> MetricsReport:
        """:meth:`metrics` for asyncio."""
        data = await self._native.metrics_async(
            since=since,
            until=until,
            prompt_id=_prompt_id(prompt_id) if prompt_id is not None else None,
            version=version,
        )
        return MetricsReport._from(data)

    def metrics_series(
        self,
        bucket: str,
        *,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        prompt_id: Optional[PromptRef] = None,
        version: Optional[int] = None,
        label: Optional[str] = None,
    ) -> MetricsSeries:
        """A time series of the user's final executions in buckets of ``bucket`` (``minute``,
        ``hour`` or ``day``): per bucket the counts by status, latency p50/p95/p99 (within 1 %),
        tokens and cost. The window is rounded outward to the bucket; ``since`` defaults to 60
        buckets before ``until`` (default: now); at most 1,500 points (ValidationError beyond)."""
        data = self._native.metrics_series(
            bucket,
            since=since,
            until=until,
            prompt_id=_prompt_id(prompt_id) if prompt_id is not None else None,
            version=version,
            label=label,
        )
        return MetricsSeries._from(data)

    async def metrics_series_async(
        self,
        bucket: str,
        *,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        prompt_id: Optional[PromptRef] = None,
        version: Optional[int] = None,
        label: Optional[str] = None,
    ) -> MetricsSeries:
        """:meth:`metrics_series` for asyncio."""
        data = await self._native.metrics_series_async(
            bucket,
            since=since,
            until=until,
            prompt_id=_prompt_id(prompt_id) if prompt_id is not None else None,
            version=version,
            label=label,
        )
        return MetricsSeries._from(data)

    # ----- datasets and experiments -----

    def create_dataset(self, name: str, rows: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
        """Stores a dataset ``{"id", "user_id", "name", "row_count", "created_at"}`` of
        ``rows`` (``[{"inputs": {...}, "expected": ...}]``, ``expected`` optional: a string or
        any JSON value), numbered from 0. 1 to 10,000 rows of at most 64 KiB each; names are
        unique per user (:class:`ConflictError`). A bad row stores nothing:
        :class:`ValidationError` lists every bad row as ``rows[i]``."""
        result: Dict[str, Any] = self._native.create_dataset(name, rows)
        return result

    async def create_dataset_async(self, name: str, rows: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
        """:meth:`create_dataset` for asyncio."""
        result: Dict[str, Any] = await self._native.create_dataset_async(name, rows)
        return result

    def create_dataset_from_executions(
        self,
        name: str,
        prompt_id: PromptRef,
        *,
        status: Optional[str] = None,
        version: Optional[int] = None,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        limit: Optional[int] = None,
        expected_from_output: bool = False,
    ) -> Dict[str, Any]:
        """Stores a dataset of the inputs of the prompt's past executions, newest first,
        filtered as :meth:`list_executions` is and by ``version``, at most ``limit`` rows
        (10,000 by default); chat calls are skipped. With ``expected_from_output``, a
        COMPLETED execution's output becomes the row's expected output."""
        result: Dict[str, Any] = self._native.create_dataset_from_executions(
            name,
            _prompt_id(prompt_id),
            status=status,
            version=version,
            since=since,
            until=until,
            limit=limit,
            expected_from_output=expected_from_output,
        )
        return result

    async def create_dataset_from_executions_async(
        self,
        name: str,
        prompt_id: PromptRef,
        *,
        status: Optional[str] = None,
        version: Optional[int] = None,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        limit: Optional[int] = None,
        expected_from_output: bool = False,
    ) -> Dict[str, Any]:
        """:meth:`create_dataset_from_executions` for asyncio."""
        result: Dict[str, Any] = await self._native.create_dataset_from_executions_async(
            name,
            _prompt_id(prompt_id),
            status=status,
            version=version,
            since=since,
            until=until,
            limit=limit,
            expected_from_output=expected_from_output,
        )
        return result

    def datasets(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> Page[Dict[str, Any]]:
        """The user's datasets, newest first."""
        return _dict_page(self._native.datasets(limit=limit, cursor=cursor))

    async def datasets_async(
        self, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Page[Dict[str, Any]]:
        """:meth:`datasets` for asyncio."""
        return _dict_page(await self._native.datasets_async(limit=limit, cursor=cursor))

    def get_dataset(self, dataset_id: DatasetRef) -> Dict[str, Any]:
        """One dataset (:class:`NotFoundError` for a missing or another user's)."""
        result: Dict[str, Any] = self._native.get_dataset(_ref_id(dataset_id))
        return result

    async def get_dataset_async(self, dataset_id: DatasetRef) -> Dict[str, Any]:
        """:meth:`get_dataset` for asyncio."""
        result: Dict[str, Any] = await self._native.get_dataset_async(_ref_id(dataset_id))
        return result

    def dataset_rows(
        self, dataset_id: DatasetRef, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Page[Dict[str, Any]]:
        """Rows ``{"index", "inputs", "expected"?}`` by index; ``next_cursor`` (the last index
        returned) is set when the page is full."""
        return _dict_page(self._native.dataset_rows(_ref_id(dataset_id), limit=limit, cursor=cursor))

    async def dataset_rows_async(
        self, dataset_id: DatasetRef, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Page[Dict[str, Any]]:
        """:meth:`dataset_rows` for asyncio."""
        return _dict_page(await self._native.dataset_rows_async(_ref_id(dataset_id), limit=limit, cursor=cursor))

    def delete_dataset(self, dataset_id: DatasetRef) -> None:
        """Deletes a dataset and its rows (:class:`ConflictError` while an experiment uses it)."""
        self._native.delete_dataset(_ref_id(dataset_id))

    async def delete_dataset_async(self, dataset_id: DatasetRef) -> None:
        """:meth:`delete_dataset` for asyncio."""
        await self._native.delete_dataset_async(_ref_id(dataset_id))

    def start_experiment(
        self,
        prompt_id: PromptRef,
        dataset_id: DatasetRef,
        versions: Sequence[Union[int, str]],
        *,
        priority: Optional[str] = None,
        concurrency: Optional[int] = None,
        match: Optional[str] = None,
        validate_output: bool = False,
    ) -> Dict[str, Any]:
        """Runs ``versions`` (1 to 10 version numbers or labels, resolved now and recorded
        as ``targets [{"requested", "version"}]``) of a prompt over every row of a dataset
        through the durable queue (``priority`` LOW unless given; at most ``concurrency``
        executions in flight, 8 by default). ``match`` (``exact``, ``json_equal``,
        ``contains``, ``regex``) compares outputs with the rows' expected outputs. Every row
        is checked against every version first (:class:`ValidationError` with
        ``rows[i].inputs.<variable>`` problems). Returns the experiment with its
        ``progress``."""
        result: Dict[str, Any] = self._native.start_experiment(
            _prompt_id(prompt_id),
            _ref_id(dataset_id),
            versions,
            priority=priority,
            concurrency=concurrency,
            match=match,
            validate_output=validate_output,
        )
        return result

    async def start_experiment_async(
        self,
        prompt_id: PromptRef,
        dataset_id: DatasetRef,
        versions: Sequence[Union[int, str]],
        *,
        priority: Optional[str] = None,
        concurrency: Optional[int] = None,
        match: Optional[str] = None,
        validate_output: bool = False,
    ) -> Dict[str, Any]:
        """:meth:`start_experiment` for asyncio."""
        result: Dict[str, Any] = await self._native.start_experiment_async(
            _prompt_id(prompt_id),
            _ref_id(dataset_id),
            versions,
            priority=priority,
            concurrency=concurrency,
            match=match,
            validate_output=validate_output,
        )
        return result

    def get_experiment(self, experiment_id: ExperimentRef) -> Dict[str, Any]:
        """One experiment with its ``progress`` ``{"status", "total", "done", "failed",
        "in_flight", "cost_usd"}`` (``cost_usd`` None when no execution is priced)."""
        result: Dict[str, Any] = self._native.get_experiment(_ref_id(experiment_id))
        return result

    async def get_experiment_async(self, experiment_id: ExperimentRef) -> Dict[str, Any]:
        """:meth:`get_experiment` for asyncio."""
        result: Dict[str, Any] = await self._native.get_experiment_async(_ref_id(experiment_id))
        return result

    def experiments(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> Page[Dict[str, Any]]:
        """The user's experiments, newest first."""
        return _dict_page(self._native.experiments(limit=limit, cursor=cursor))

    async def experiments_async(
        self, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Page[Dict[str, Any]]:
        """:meth:`experiments` for asyncio."""
        return _dict_page(await self._native.experiments_async(limit=limit, cursor=cursor))

    def experiment_results(self, experiment_id: ExperimentRef) -> Dict[str, Any]:
        """The side-by-side comparison as it is now: ``experiment``, ``progress``,
        ``versions`` (per version: ``summary`` of latency, tokens, cost and statuses,
        ``match_checked``, ``matched``, ``match_rate``) and ``rows`` (per row: ``index``,
        ``inputs``, ``expected`` and ``results``, one per version, with ``status``,
        ``output``, ``matched``, ``latency_ms``, ``cost_usd``, ``error``...)."""
        result: Dict[str, Any] = self._native.experiment_results(_ref_id(experiment_id))
        return result

    async def experiment_results_async(self, experiment_id: ExperimentRef) -> Dict[str, Any]:
        """:meth:`experiment_results` for asyncio."""
        result: Dict[str, Any] = await self._native.experiment_results_async(_ref_id(experiment_id))
        return result

    def cancel_experiment(self, experiment_id: ExperimentRef) -> Dict[str, Any]:
        """Cancels a running experiment: queued rows are cancelled, finished ones kept
        (:class:`ConflictError` once completed; cancelling twice is not an error)."""
        result: Dict[str, Any] = self._native.cancel_experiment(_ref_id(experiment_id))
        return result

    async def cancel_experiment_async(self, experiment_id: ExperimentRef) -> Dict[str, Any]:
        """:meth:`cancel_experiment` for asyncio."""
        result: Dict[str, Any] = await self._native.cancel_experiment_async(_ref_id(experiment_id))
        return result

    def follow_experiment(self, experiment_id: ExperimentRef) -> Progress:
        """The experiment's progress now and on each change until it is completed or
        cancelled with nothing in flight, as an iterator (or ``async for``)."""
        return Progress(self._native.follow_experiment(_ref_id(experiment_id)))

    async def follow_experiment_async(self, experiment_id: ExperimentRef) -> Progress:
        """:meth:`follow_experiment` for asyncio: subscribing reads the store, so it is awaited
        (``async for p in await engine.follow_experiment_async(x)``)."""
        return Progress(await self._native.follow_experiment_async(_ref_id(experiment_id)))

    def events(self, execution_id: Optional[ExecutionRef] = None, *, timeout: Optional[float] = None) -> Events:
        """State-change events of the user's executions (of one, with ``execution_id``) from
        now on. With ``execution_id`` the first event reports the execution's state when
        following began (an execution already final yields its final event) and iteration ends
        after its final event. ``timeout``: seconds to wait for each next event before iteration
        ends (None: wait until the followed execution ends, or forever for all executions).
        Subscribe before :meth:`submit` to see an execution's first events."""
        native = self._native.events(
            _execution_id(execution_id) if execution_id is not None else None, timeout=timeout
        )
        return Events(native)

    async def events_async(
        self, execution_id: Optional[ExecutionRef] = None, *, timeout: Optional[float] = None
    ) -> Events:
        """:meth:`events` for asyncio: following one execution reads the store, so subscribing
        is awaited (``async for e in await engine.events_async(x)``)."""
        native = await self._native.events_async(
            _execution_id(execution_id) if execution_id is not None else None, timeout=timeout
        )
        return Events(native)


def _version_ref(
    ref: Union[str, Prompt, PromptVersion], version: Optional[int]
) -> Tuple[str, Optional[int]]:
    if isinstance(ref, PromptVersion) and version is None:
        return ref.prompt_id, ref.version
    return _prompt_id(ref), version
