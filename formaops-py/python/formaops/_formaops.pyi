# Type stubs of the native module (formaops-py/src). Checked against the built module by
# `python -m mypy.stubtest formaops._formaops` (run by scripts/test.sh and the test suite).
from datetime import datetime
from typing import Any, Awaitable, Dict, List, Mapping, Optional, Sequence, Tuple, Union, final

__all__ = [
    "ConflictError",
    "DEFAULT_USER_EMAIL",
    "EventStream",
    "FINAL_STATUSES",
    "FormaOpsError",
    "NativeEngine",
    "NotFoundError",
    "ProgressStream",
    "ProviderError",
    "UnavailableError",
    "ValidationError",
    "__version__",
]

__version__: str
DEFAULT_USER_EMAIL: str
FINAL_STATUSES: Tuple[str, ...]

class FormaOpsError(Exception): ...

class ValidationError(FormaOpsError):
    problems: Sequence[Dict[str, str]]

class NotFoundError(FormaOpsError): ...
class ConflictError(FormaOpsError): ...

class ProviderError(FormaOpsError):
    transient: bool
    kind: Optional[str]
    status: Optional[int]
    retry_after: Optional[float]

class UnavailableError(FormaOpsError): ...

@final
class EventStream:
    def __iter__(self) -> EventStream: ...
    def __next__(self) -> Dict[str, Any]: ...
    def __aiter__(self) -> EventStream: ...
    def __anext__(self) -> Awaitable[Dict[str, Any]]: ...
    def close(self) -> None: ...

@final
class ProgressStream:
    def __iter__(self) -> ProgressStream: ...
    def __next__(self) -> Dict[str, Any]: ...
    def __aiter__(self) -> ProgressStream: ...
    def __anext__(self) -> Awaitable[Dict[str, Any]]: ...
    def close(self) -> None: ...

@final
class NativeEngine:
    @staticmethod
    def open(
        url: Optional[str] = None,
        *,
        provider: Optional[str] = None,
        base_url: Optional[str] = None,
        api_key: Optional[str] = None,
        user: Optional[str] = None,
        mock_latency_ms: Optional[int] = None,
        mock_reply: Optional[str] = None,
        mock_faults: Optional[Sequence[Mapping[str, Any]]] = None,
        max_attempts: Optional[int] = None,
        execution_timeout: Optional[float] = None,
        concurrency: Optional[int] = None,
        prices_file: Optional[str] = None,
        durability: Optional[str] = None,
    ) -> NativeEngine: ...
    @property
    def user_id(self) -> str: ...
    @property
    def user_email(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def close(self, *, grace: Optional[float] = None) -> None: ...
    def close_async(self, *, grace: Optional[float] = None) -> Awaitable[None]: ...
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
    ) -> Dict[str, Any]: ...
    def create_prompt_async(
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
    ) -> Awaitable[Dict[str, Any]]: ...
    def update_prompt(
        self,
        prompt_id: str,
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
    ) -> Dict[str, Any]: ...
    def update_prompt_async(
        self,
        prompt_id: str,
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
    ) -> Awaitable[Dict[str, Any]]: ...
    def get_prompt(
        self, prompt_id: str, version: Optional[int] = None, *, label: Optional[str] = None
    ) -> Dict[str, Any]: ...
    def get_prompt_async(
        self, prompt_id: str, version: Optional[int] = None, *, label: Optional[str] = None
    ) -> Awaitable[Dict[str, Any]]: ...
    def set_label(self, prompt_id: str, name: str, version: int) -> Dict[str, Any]: ...
    def set_label_async(self, prompt_id: str, name: str, version: int) -> Awaitable[Dict[str, Any]]: ...
    def delete_label(self, prompt_id: str, name: str) -> None: ...
    def delete_label_async(self, prompt_id: str, name: str) -> Awaitable[None]: ...
    def labels(self, prompt_id: str) -> List[Dict[str, Any]]: ...
    def labels_async(self, prompt_id: str) -> Awaitable[List[Dict[str, Any]]]: ...
    def label_history(self, prompt_id: str, *, label: Optional[str] = None) -> List[Dict[str, Any]]: ...
    def label_history_async(self, prompt_id: str, *, label: Optional[str] = None) -> Awaitable[List[Dict[str, Any]]]: ...
    def set_promotion_guard(self, prompt_id: str, enabled: bool) -> None: ...
    def set_promotion_guard_async(self, prompt_id: str, enabled: bool) -> Awaitable[None]: ...
    def diff(self, prompt_id: str, from_: Union[int, str], to: Union[int, str]) -> Dict[str, Any]: ...
    def diff_async(self, prompt_id: str, from_: Union[int, str], to: Union[int, str]) -> Awaitable[Dict[str, Any]]: ...
    def list_prompts(
        self, *, status: Optional[str] = None, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Dict[str, Any]: ...
    def list_prompts_async(
        self, *, status: Optional[str] = None, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Awaitable[Dict[str, Any]]: ...
    def versions(
        self, prompt_id: str, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Dict[str, Any]: ...
    def versions_async(
        self, prompt_id: str, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Awaitable[Dict[str, Any]]: ...
    def archive_prompt(self, prompt_id: str) -> Dict[str, Any]: ...
    def archive_prompt_async(self, prompt_id: str) -> Awaitable[Dict[str, Any]]: ...
    def validate_inputs(
        self, prompt_id: str, inputs: Optional[Mapping[str, Any]] = None, *, version: Optional[int] = None
    ) -> Dict[str, Any]: ...
    def validate_inputs_async(
        self, prompt_id: str, inputs: Optional[Mapping[str, Any]] = None, *, version: Optional[int] = None
    ) -> Awaitable[Dict[str, Any]]: ...
    def render(
        self, prompt_id: str, inputs: Optional[Mapping[str, Any]] = None, *, version: Optional[int] = None
    ) -> List[Dict[str, Any]]: ...
    def render_async(
        self, prompt_id: str, inputs: Optional[Mapping[str, Any]] = None, *, version: Optional[int] = None
    ) -> Awaitable[List[Dict[str, Any]]]: ...
    def execute(
        self,
        prompt_id: str,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: Optional[int] = None,
        priority: Optional[str] = None,
        validate_output: Optional[bool] = None,
        idempotency_key: Optional[str] = None,
        label: Optional[str] = None,
    ) -> Dict[str, Any]: ...
    def execute_async(
        self,
        prompt_id: str,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: Optional[int] = None,
        priority: Optional[str] = None,
        validate_output: Optional[bool] = None,
        idempotency_key: Optional[str] = None,
        label: Optional[str] = None,
    ) -> Awaitable[Dict[str, Any]]: ...
    def submit(
        self,
        prompt_id: str,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: Optional[int] = None,
        priority: Optional[str] = None,
        validate_output: Optional[bool] = None,
        idempotency_key: Optional[str] = None,
        label: Optional[str] = None,
    ) -> Dict[str, Any]: ...
    def submit_async(
        self,
        prompt_id: str,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: Optional[int] = None,
        priority: Optional[str] = None,
        validate_output: Optional[bool] = None,
        idempotency_key: Optional[str] = None,
        label: Optional[str] = None,
    ) -> Awaitable[Dict[str, Any]]: ...
    def wait(self, execution_id: str, timeout: Optional[float] = None) -> Dict[str, Any]: ...
    def wait_async(self, execution_id: str, timeout: Optional[float] = None) -> Awaitable[Dict[str, Any]]: ...
    def retry(self, execution_id: str) -> Dict[str, Any]: ...
    def retry_async(self, execution_id: str) -> Awaitable[Dict[str, Any]]: ...
    def cancel(self, execution_id: str) -> Dict[str, Any]: ...
    def cancel_async(self, execution_id: str) -> Awaitable[Dict[str, Any]]: ...
    def get_execution(self, execution_id: str) -> Dict[str, Any]: ...
    def get_execution_async(self, execution_id: str) -> Awaitable[Dict[str, Any]]: ...
    def list_executions(
        self,
        *,
        status: Optional[str] = None,
        prompt_id: Optional[str] = None,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> Dict[str, Any]: ...
    def list_executions_async(
        self,
        *,
        status: Optional[str] = None,
        prompt_id: Optional[str] = None,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> Awaitable[Dict[str, Any]]: ...
    def metrics(
        self,
        *,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        prompt_id: Optional[str] = None,
        version: Optional[int] = None,
    ) -> Dict[str, Any]: ...
    def metrics_async(
        self,
        *,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        prompt_id: Optional[str] = None,
        version: Optional[int] = None,
    ) -> Awaitable[Dict[str, Any]]: ...
    def metrics_series(
        self,
        bucket: str,
        *,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        prompt_id: Optional[str] = None,
        version: Optional[int] = None,
        label: Optional[str] = None,
    ) -> Dict[str, Any]: ...
    def metrics_series_async(
        self,
        bucket: str,
        *,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        prompt_id: Optional[str] = None,
        version: Optional[int] = None,
        label: Optional[str] = None,
    ) -> Awaitable[Dict[str, Any]]: ...
    def events(self, execution_id: Optional[str] = None, *, timeout: Optional[float] = None) -> EventStream: ...
    def events_async(self, execution_id: Optional[str] = None, *, timeout: Optional[float] = None) -> Awaitable[EventStream]: ...
    def create_dataset(self, name: str, rows: Sequence[Mapping[str, Any]]) -> Dict[str, Any]: ...
    def create_dataset_async(self, name: str, rows: Sequence[Mapping[str, Any]]) -> Awaitable[Dict[str, Any]]: ...
    def create_dataset_from_executions(
        self,
        name: str,
        prompt_id: str,
        *,
        status: Optional[str] = None,
        version: Optional[int] = None,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        limit: Optional[int] = None,
        expected_from_output: Optional[bool] = None,
    ) -> Dict[str, Any]: ...
    def create_dataset_from_executions_async(
        self,
        name: str,
        prompt_id: str,
        *,
        status: Optional[str] = None,
        version: Optional[int] = None,
        since: Optional[datetime] = None,
        until: Optional[datetime] = None,
        limit: Optional[int] = None,
        expected_from_output: Optional[bool] = None,
    ) -> Awaitable[Dict[str, Any]]: ...
    def datasets(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> Dict[str, Any]: ...
    def datasets_async(
        self, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Awaitable[Dict[str, Any]]: ...
    def get_dataset(self, dataset_id: str) -> Dict[str, Any]: ...
    def get_dataset_async(self, dataset_id: str) -> Awaitable[Dict[str, Any]]: ...
    def dataset_rows(
        self, dataset_id: str, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Dict[str, Any]: ...
    def dataset_rows_async(
        self, dataset_id: str, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Awaitable[Dict[str, Any]]: ...
    def delete_dataset(self, dataset_id: str) -> None: ...
    def delete_dataset_async(self, dataset_id: str) -> Awaitable[None]: ...
    def start_experiment(
        self,
        prompt_id: str,
        dataset_id: str,
        versions: Sequence[Union[int, str]],
        *,
        priority: Optional[str] = None,
        concurrency: Optional[int] = None,
        match: Optional[str] = None,
        validate_output: Optional[bool] = None,
    ) -> Dict[str, Any]: ...
    def start_experiment_async(
        self,
        prompt_id: str,
        dataset_id: str,
        versions: Sequence[Union[int, str]],
        *,
        priority: Optional[str] = None,
        concurrency: Optional[int] = None,
        match: Optional[str] = None,
        validate_output: Optional[bool] = None,
    ) -> Awaitable[Dict[str, Any]]: ...
    def get_experiment(self, experiment_id: str) -> Dict[str, Any]: ...
    def get_experiment_async(self, experiment_id: str) -> Awaitable[Dict[str, Any]]: ...
    def experiments(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> Dict[str, Any]: ...
    def experiments_async(
        self, *, limit: Optional[int] = None, cursor: Optional[str] = None
    ) -> Awaitable[Dict[str, Any]]: ...
    def experiment_results(self, experiment_id: str) -> Dict[str, Any]: ...
    def experiment_results_async(self, experiment_id: str) -> Awaitable[Dict[str, Any]]: ...
    def cancel_experiment(self, experiment_id: str) -> Dict[str, Any]: ...
    def cancel_experiment_async(self, experiment_id: str) -> Awaitable[Dict[str, Any]]: ...
    def follow_experiment(self, experiment_id: str) -> ProgressStream: ...
    def follow_experiment_async(self, experiment_id: str) -> Awaitable[ProgressStream]: ...
    def health(self) -> Dict[str, Any]: ...
    def health_async(self) -> Awaitable[Dict[str, Any]]: ...
