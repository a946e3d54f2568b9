"""The dataset spec: the one declaration of columns that everything else derives from."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = int | float | str
FeatureType = Literal["integer", "float", "category"]
Monotonic = Literal["increasing", "decreasing"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feature(_Strict):
    """One input column of the model."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: FeatureType
    min: float | None = None
    max: float | None = None
    step: float | None = None
    values: tuple[int | str, ...] | None = None
    labels: dict[int | str, str] | None = None
    nullable: bool = False
    description: str = ""
    unit: str = ""
    monotonic: Monotonic | None = None
    """Numeric features only: the churn risk may only rise (increasing) or only fall (decreasing) with the value.
    Honoured by model families that can constrain it (hgb); the others say in their report that they ignore it."""

    @model_validator(mode="after")
    def _check(self) -> Feature:
        if self.type == "category":
            if not self.values:
                raise ValueError(f"feature {self.name!r}: a category needs 'values'")
            if len(set(self.values)) != len(self.values):
                raise ValueError(f"feature {self.name!r}: 'values' has duplicates")
            if len({type(v) for v in self.values}) != 1:
                raise ValueError(f"feature {self.name!r}: 'values' mixes numbers and strings")
            if self.labels and self.value_kind is int:  # JSON and YAML round trips turn int keys into text
                labels = {
                    int(k) if isinstance(k, str) and k.lstrip("-").isdigit() else k: v for k, v in self.labels.items()
                }
                object.__setattr__(self, "labels", labels)
            unknown = set(self.labels or {}) - set(self.values)
            if unknown:
                raise ValueError(f"feature {self.name!r}: labels for unknown values {sorted(map(str, unknown))}")
            if self.min is not None or self.max is not None:
                raise ValueError(f"feature {self.name!r}: a category takes 'values', not 'min'/'max'")
            if self.monotonic is not None:
                raise ValueError(f"feature {self.name!r}: 'monotonic' is for numeric features only, not categories")
        else:
            if self.values is not None or self.labels is not None:
                raise ValueError(f"feature {self.name!r}: 'values'/'labels' are for categories only")
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"feature {self.name!r}: min {self.min} > max {self.max}")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type != "category"

    @property
    def value_kind(self) -> builtins.type[int] | builtins.type[str]:
        """Python type of the category values (int or str)."""
        assert self.values is not None
        return type(self.values[0])

    def label(self, value: int | str) -> str:
        return (self.labels or {}).get(value, str(value))


class Target(_Strict):
    """The label column and which of its two values means "churned"."""

    name: str
    positive: int | str
    negative: int | str | None = None

    @model_validator(mode="after")
    def _default_negative(self) -> Target:
        if self.negative is None:
            if isinstance(self.positive, str):
                raise ValueError("target: a string 'positive' needs an explicit 'negative'")
            object.__setattr__(self, "negative", 0 if self.positive != 0 else 1)
        if self.negative == self.positive or type(self.negative) is not type(self.positive):
            raise ValueError("target: 'negative' must differ from 'positive' and have the same type")
        return self

    @property
    def values(self) -> tuple[int | str, int | str]:
        assert self.negative is not None
        return (self.negative, self.positive)


class DatasetSpec(_Strict):
    """Columns, types, bounds and labels of a churn data set."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="registered model name")
    target: Target
    id_columns: tuple[str, ...] = ()
    features: tuple[Feature, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> DatasetSpec:
        names = [*self.feature_names, self.target.name, *self.id_columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"column names used twice: {dupes}")
        return self

    @classmethod
    def load(cls, path: str | Path) -> DatasetSpec:
        return cls.from_yaml(Path(path).read_text(encoding="utf-8"))

    @classmethod
    def from_yaml(cls, text: str) -> DatasetSpec:
        data = yaml.safe_load(text)
        if not isinstance(data, dict):
            raise ValueError("dataset spec must be a YAML mapping")
        return cls.model_validate(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", exclude_defaults=True), sort_keys=False)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[Feature]:
        return [f for f in self.features if f.is_numeric]

    @property
    def categorical(self) -> list[Feature]:
        return [f for f in self.features if not f.is_numeric]

    @property
    def columns(self) -> list[str]:
        """Every column a training CSV must have, in file order."""
        return [*self.id_columns, *self.feature_names, self.target.name]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def public(self) -> dict[str, Any]:
        """The spec as plain JSON for clients (the predictor's info route, the UI form)."""
        return self.model_dump(mode="json")
