"""Where the memory service keeps its graphs, and how much one tenant may keep (MEMORY_*)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:  # the graph imports fastmcp; start-up reads these settings before it
    from memory_service.graph import Limits

DYNAMODB_ITEM_BYTES = 400 * 1024
"""DynamoDB's item size limit: an entity and all its observations are one item."""


def default_sqlite_path() -> Path:
    """`.fleet/memory.sqlite` at the workspace root (found above this file), else in the
    current folder: local data lives beside the repository and is git-ignored."""
    here = Path(__file__).resolve()
    for folder in here.parents:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text(encoding="utf-8"):
            return folder / ".fleet" / "memory.sqlite"
    return Path.cwd() / ".fleet" / "memory.sqlite"


class MemorySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEMORY_", extra="ignore")

    table_name: str | None = Field(default=None, min_length=3, max_length=255)
    """DynamoDB table (the template sets it); unset: a local SQLite file."""
    sqlite_path: Path = Field(default_factory=default_sqlite_path)
    max_items_per_call: int = Field(default=99, ge=1, le=99)
    """Entities, relations, names or observations in one call (DynamoDB writes one call's
    changes in one transaction, which holds at most 100: 99 items and the counter)."""
    max_observation_bytes: int = Field(default=4096, ge=16, le=16384)
    max_observations_per_entity: int = Field(default=64, ge=1, le=1000)
    max_entities_per_tenant: int = Field(default=10_000, ge=1)
    max_relations_per_tenant: int = Field(default=50_000, ge=1)
    max_bytes_per_tenant: int = Field(default=1_000_000, ge=1024, le=20_000_000)
    """Names, types and observations of one graph (UTF-8): what a search reads and what an
    answer may have to carry (each answer holds the graph twice, as structured content and
    as indented text)."""
    store_budget_seconds: float = Field(default=15.0, gt=0, le=60)
    """The longest one tool call may spend on DynamoDB calls in all (every page, batch and
    retry of a hub entity's relations): past it the call ends in a clear error, and a call
    cancelled or past its deadline makes no further DynamoDB call."""
    max_answer_bytes: int = Field(default=4_000_000, ge=16_384, le=5_500_000)
    """One read_graph / search_nodes / open_nodes answer, both copies, JSON-encoded: under
    Lambda's 6 MB response limit with room for the envelope."""

    @model_validator(mode="after")
    def _fits_one_item(self) -> MemorySettings:
        worst = self.max_observation_bytes * self.max_observations_per_entity
        if worst > DYNAMODB_ITEM_BYTES - 8 * 1024:
            raise ValueError(
                "MEMORY_MAX_OBSERVATION_BYTES x MEMORY_MAX_OBSERVATIONS_PER_ENTITY "
                f"({worst} bytes) must leave room in one 400 KB DynamoDB item"
            )
        return self

    @model_validator(mode="after")
    def _table_in_lambda(self) -> MemorySettings:
        import os

        if "AWS_LAMBDA_FUNCTION_NAME" in os.environ and not self.table_name:
            raise ValueError("MEMORY_TABLE_NAME must be set inside Lambda (the template sets it)")
        return self

    @property
    def limits(self) -> Limits:
        from memory_service.graph import Limits

        return Limits(
            items_per_call=self.max_items_per_call,
            observation_bytes=self.max_observation_bytes,
            observations_per_entity=self.max_observations_per_entity,
            entities_per_tenant=self.max_entities_per_tenant,
            relations_per_tenant=self.max_relations_per_tenant,
            bytes_per_tenant=self.max_bytes_per_tenant,
            answer_bytes=self.max_answer_bytes,
        )


@cache
def get_settings() -> MemorySettings:
    """Read once per process."""
    return MemorySettings()
