"""A search engine for argilla-server that answers from argilla's own database.

Elasticsearch and OpenSearch cannot be installed here, and a local review server does not
need them: argilla-server keeps every record, response and suggestion in its database and
looks its search engine up by name (`ARGILLA_SEARCH_ENGINE`), so this class, registered
before the app starts, serves search, progress and metadata metrics with SQL reads and
filters in Python. Indexing calls are no-ops: the database is the index.

It runs inside argilla-server's own virtual environment (see launch.py), never in
codecurate's. Sized for local review: each search reads the dataset's rows once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from argilla_server.database import AsyncSessionLocal
from argilla_server.enums import MetadataPropertyType, RecordSortField, SortOrder
from argilla_server.models import (
    Dataset,
    MetadataProperty,
    Question,
    Record,
    Response,
    Suggestion,
    User,
)
from argilla_server.search_engine import (
    AndFilter,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataFilterScope,
    MetadataMetrics,
    Order,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
    TermsMetrics,
    TextQuery,
)
from sqlalchemy import func, select

ENGINE_NAME = "codecurate-sql"


class Rows:
    """A dataset's records with their responses and suggestions, read in three queries."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.responses: dict[Any, list[Any]] = defaultdict(list)
        self.suggestions: dict[Any, dict[str, Any]] = defaultdict(dict)

    @classmethod
    async def read(cls, dataset_id: Any) -> Rows:
        rows = cls()
        async with AsyncSessionLocal() as db:
            rows.records = list(
                (await db.execute(select(Record).where(Record.dataset_id == dataset_id))).scalars()
            )
            responses = await db.execute(
                select(Response).join(Record).where(Record.dataset_id == dataset_id)
            )
            for response in responses.scalars():
                rows.responses[response.record_id].append(response)
            suggestions = await db.execute(
                select(Suggestion, Question.name)
                .join(Question, Suggestion.question_id == Question.id)
                .where(Question.dataset_id == dataset_id)
            )
            for suggestion, question in suggestions.all():
                rows.suggestions[suggestion.record_id][question] = suggestion
        return rows

    def values(self, record: Any, scope: Any) -> list[Any]:
        """What a filter or sort scope sees on one record (a list: responses are many)."""
        if isinstance(scope, RecordFilterScope):
            value = getattr(record, scope.property, None)
            return [value.value if hasattr(value, "value") else value]
        if isinstance(scope, MetadataFilterScope):
            value = (record.metadata_ or {}).get(scope.metadata_property)
            return value if isinstance(value, list) else [value]
        if isinstance(scope, SuggestionFilterScope):
            suggestion = self.suggestions[record.id].get(scope.question)
            if suggestion is None:
                return []
            value = getattr(suggestion, scope.property, None)
            return value if isinstance(value, list) else [value]
        assert isinstance(scope, ResponseFilterScope)
        responses = [r for r in self.responses[record.id]
                     if scope.user is None or r.user_id == scope.user.id]  # fmt: skip
        if scope.question is None:  # the response status; no response is "pending"
            return [r.status.value for r in responses] or ["pending"]
        found = []
        for response in responses:
            value = (response.values or {}).get(scope.question, {}).get("value")
            found.extend(value if isinstance(value, list) else [value])
        return found

    def matches(self, record: Any, condition: Any) -> bool:
        if condition is None:
            return True
        if isinstance(condition, AndFilter):
            return all(self.matches(record, part) for part in condition.filters)
        values = [v for v in self.values(record, condition.scope) if v is not None]
        if isinstance(condition, TermsFilter):
            wanted = {str(v) for v in condition.values}
            return any(str(v) in wanted for v in values)
        assert isinstance(condition, RangeFilter)
        return any(
            (condition.ge is None or float(v) >= condition.ge)
            and (condition.le is None or float(v) <= condition.le)
            for v in values
        )


def _text_matches(record: Any, query: TextQuery | str | None) -> bool:
    if query is None:
        return True
    text = query if isinstance(query, str) else query.q
    field = None if isinstance(query, str) else query.field
    fields = record.fields or {}
    haystack = [fields.get(field)] if field else list(fields.values())
    needle = text.lower()
    return any(needle in str(value).lower() for value in haystack if value is not None)


def _sort_key(rows: Rows, order: Order) -> Any:
    def key(record: Any) -> tuple[bool, Any]:
        if isinstance(order.scope, RecordFilterScope) and order.scope.property in (
            RecordSortField.inserted_at, RecordSortField.updated_at, "inserted_at", "updated_at",
        ):  # fmt: skip
            return False, getattr(record, str(order.scope.property))
        values = [v for v in rows.values(record, order.scope) if v is not None]
        value = values[0] if values else None
        # missing values sort last, whatever the direction
        return (value is None) != (order.order == SortOrder.desc), (
            value if value is not None else ""
        )

    return key


@SearchEngine.register(engine_name=ENGINE_NAME)
class DatabaseSearchEngine(SearchEngine):
    """Search, progress and metrics over argilla's database; see the module docstring."""

    @classmethod
    async def new_instance(cls) -> DatabaseSearchEngine:
        return cls()

    async def close(self) -> None:
        return None

    async def ping(self) -> bool:
        return True

    async def info(self) -> dict:
        return {"engine": ENGINE_NAME, "backend": "argilla database"}

    # the database is the index: nothing to create, index or delete
    async def create_index(self, dataset: Dataset) -> None:
        return None

    async def delete_index(self, dataset: Dataset) -> None:
        return None

    async def configure_metadata_property(
        self, dataset: Dataset, metadata_property: MetadataProperty
    ) -> None:
        return None

    async def index_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        return None

    async def partial_record_update(self, record: Record, **update: Any) -> None:
        return None

    async def delete_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        return None

    async def update_record_response(self, response: Response) -> None:
        return None

    async def delete_record_response(self, response: Response) -> None:
        return None

    async def update_record_suggestion(self, suggestion: Suggestion) -> None:
        return None

    async def delete_record_suggestion(self, suggestion: Suggestion) -> None:
        return None

    async def get_dataset_progress(self, dataset: Dataset) -> dict:
        async with AsyncSessionLocal() as db:
            counts = await db.execute(
                select(Record.status, func.count())
                .where(Record.dataset_id == dataset.id)
                .group_by(Record.status)
            )
            by_status = {status.value: count for status, count in counts.all()}
        return {"total": sum(by_status.values()), **by_status}

    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict:
        async with AsyncSessionLocal() as db:
            counts = await db.execute(
                select(Response.status, func.count())
                .join(Record)
                .where(Record.dataset_id == dataset.id, Response.user_id == user.id)
                .group_by(Response.status)
            )
            by_status = {status.value: count for status, count in counts.all()}
        return {"total": sum(by_status.values()), **by_status}

    async def search(
        self,
        dataset: Dataset,
        query: TextQuery | str | None = None,
        filter: Any = None,
        sort: list[Order] | None = None,
        offset: int = 0,
        limit: int = 100,
        user_id: Any = None,
    ) -> SearchResponses:
        rows = await Rows.read(dataset.id)
        found = [r for r in rows.records if _text_matches(r, query) and rows.matches(r, filter)]
        found.sort(key=lambda r: (r.inserted_at, str(r.id)))
        for order in reversed(sort or []):  # stable sorts, last key first
            found.sort(key=_sort_key(rows, order), reverse=order.order == SortOrder.desc)
        page = found[offset : offset + limit]
        return SearchResponses(
            items=[SearchResponseItem(record_id=r.id, score=None) for r in page], total=len(found)
        )

    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        rows = await Rows.read(metadata_property.dataset_id)
        scope = MetadataFilterScope(metadata_property=metadata_property.name)
        values = [v for r in rows.records for v in rows.values(r, scope) if v is not None]
        if metadata_property.type == MetadataPropertyType.terms:
            counts = Counter(str(v) for v in values)
            return TermsMetrics(
                total=len(counts),
                values=[TermsMetrics.TermCount(term=t, count=c) for t, c in counts.most_common()],
            )
        metrics = (
            IntegerMetadataMetrics
            if metadata_property.type == MetadataPropertyType.integer
            else FloatMetadataMetrics
        )
        return metrics(min=min(values, default=None), max=max(values, default=None))

    async def similarity_search(self, *args: Any, **kwargs: Any) -> SearchResponses:
        # no vectors are configured for code review; an empty answer beats an error page
        return SearchResponses(items=[], total=0)
