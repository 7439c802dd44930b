"""A CSV data file with a header row, read once with the checks every world's data files
need (a persona table, a schedule): a missing or unreadable file, an empty one, a column
named twice, a required column missing or a row of the wrong length is one ``ConfigError``
line naming the file (and line) and the fix. Cells stay text; the world checks its values
and names ``row.where`` in its own errors.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agora.engine.config import ConfigError


@dataclass(frozen=True, slots=True)
class CsvRow:
    where: str  # "FIELD: FILE:LINE", for the caller's own errors
    cells: Sequence[str]
    columns: dict[str, int]

    def get(self, name: str, default: str = "") -> str:
        """The stripped cell of column ``name`` (lower case), or ``default`` without one."""
        index = self.columns.get(name)
        return self.cells[index].strip() if index is not None else default


@dataclass(frozen=True, slots=True)
class CsvTable:
    where: str  # "FIELD: FILE"
    columns: dict[str, int]
    rows: Sequence[CsvRow]

    def __iter__(self) -> Iterator[CsvRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def read_csv_table(path: str | Path, field: str, required: Sequence[str] = ()) -> CsvTable:
    """The rows of the CSV at ``path`` (blank lines skipped), column names case-insensitive.
    ``field`` is the config field that named the file, the start of every error."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{field}: no file {file} (give a CSV path)") from None
    except IsADirectoryError:
        raise ConfigError(f"{field}: {file} is a directory; give a CSV file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{field}: {file} cannot be read as UTF-8 text ({exc})") from None
    where = f"{field}: {file}"
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            raise ConfigError(f"{where}: the file is empty; it needs a header row")
        names = [h.strip().lower() for h in header]
        doubled = sorted({n for n in names if names.count(n) > 1 and n})
        if doubled:
            raise ConfigError(f"{where}:1: column {doubled[0]!r} appears twice; keep one")
        columns = {name: i for i, name in enumerate(names)}
        for name in required:
            if name not in columns:
                raise ConfigError(f"{where}:1: no column {name!r}; add it to the header")
        rows: list[CsvRow] = []
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(names):
                raise ConfigError(
                    f"{where}:{line}: {len(cells)} values for {len(names)} columns; "
                    "give one value per column (empty for none)"
                )
            rows.append(CsvRow(f"{where}:{line}", cells, columns))
    except csv.Error as exc:
        raise ConfigError(f"{where}:{reader.line_num}: not CSV ({exc})") from None
    return CsvTable(where, columns, rows)
