"""Tidy tables: one row per value, with the identifying columns first; merged and sorted deterministically.

Sorting by every identifying column makes a merged table independent of how the work was split (shards,
methods, job order): the same rows give the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from depthxai.errors import DataError

#: The columns of a score table: one row per dataset, model, method, image and metric.
SCORE_COLUMNS = ("dataset", "model", "method", "image_id", "metric", "value")

#: Identifying columns in their canonical order (those present are used, in this order).
KEY_COLUMNS = ("dataset", "model", "method", "image_id", "factor", "repeat", "order", "fraction", "curve", "metric")


def sort_tidy(table: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by the identifying columns present (stable), index reset."""
    keys = [c for c in KEY_COLUMNS if c in table.columns]
    return table.sort_values(keys, kind="stable").reset_index(drop=True) if keys else table.reset_index(drop=True)


def concat_tidy(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Read tidy CSVs (ids as strings), check they share columns, concatenate and sort.

    Raises:
        DataError: naming a file that is missing or whose columns differ from the first file's, or the files that
            hold the same row twice (the same identifying columns: e.g. a shard merged twice, or two shards with
            the same image).
    """
    frames = []
    columns: list[str] | None = None
    for path in paths:
        try:
            frame = pd.read_csv(path, dtype={"image_id": str, "dataset": str, "model": str, "method": str})
        except FileNotFoundError:
            raise DataError(f"{path}: missing; rerun the rule that writes it") from None
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: empty file; rerun the rule that writes it") from None
        if columns is None:
            columns = list(frame.columns)
        elif list(frame.columns) != columns:
            raise DataError(f"{path}: columns {list(frame.columns)} differ from {columns}")
        frames.append(frame.assign(_source=str(path)))
    if not frames:
        raise DataError("nothing to merge")
    table = pd.concat(frames, ignore_index=True)
    keys = [c for c in table.columns if c not in ("value", "_source")]  # every column that says what a value is
    if keys:
        repeated = table[table.duplicated(keys, keep=False)]
        if not repeated.empty:
            first = repeated.iloc[0]
            same = (repeated[keys] == first[keys]) | (repeated[keys].isna() & first[keys].isna())
            sources = sorted(set(repeated[same.all(axis=1)]["_source"]))
            key = ", ".join(f"{k}={first[k]}" for k in keys if k in KEY_COLUMNS) or "all columns equal"
            raise DataError(f"{' and '.join(sources)}: the row ({key}) occurs more than once; a file given twice, or "
                            "two shards holding the same image?")
    return sort_tidy(table.drop(columns="_source"))


def read_tidy(path: str | Path) -> pd.DataFrame:
    """One tidy CSV (:func:`concat_tidy` of one file)."""
    return concat_tidy([path])


def read_tidy_many(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Several tidy CSVs concatenated; an empty frame for none (a stage that did not run, e.g. object shift on real
    data)."""
    paths = list(paths)
    return concat_tidy(paths) if paths else pd.DataFrame()


def with_labels(table: pd.DataFrame, labels: dict[str, object]) -> pd.DataFrame:
    """``table`` with the identifying ``labels`` (e.g. dataset, model, method) as its first columns."""
    return table.assign(**labels)[[*labels, *[c for c in table.columns if c not in labels]]]


def require_columns(table: pd.DataFrame, columns: Iterable[str], what: str = "score table") -> None:
    """Raise ``ValueError`` naming what ``table`` (``what``) lacks of ``columns``."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; have {list(table.columns)}")


def numeric_scores(table: pd.DataFrame, columns: Iterable[str] = SCORE_COLUMNS,
                   what: str = "score table") -> pd.DataFrame:
    """``table``'s ``columns`` (checked, :func:`require_columns`) with ``value`` as float64 (NaN where missing)."""
    columns = list(columns)
    require_columns(table, columns, what)
    out = table[columns].copy()
    out["value"] = pd.to_numeric(out["value"], errors="coerce").astype("float64")
    return out
