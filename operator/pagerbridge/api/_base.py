"""Base model shared by every custom-resource and contract model.

JSON field names are camelCase, like Kubernetes objects; Python attributes stay snake_case.
Models are frozen so a parsed spec can be passed around and hashed without surprises, and
they forbid unknown fields so a typo in a RelayConfig file fails loudly.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class CamelModel(BaseModel):
    """A strict, frozen model whose JSON names are camelCase."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
    )

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON form (camelCase names, unset optionals left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
