"""Reading message CSV files (``id,title,text[,label]``; extra columns are ignored)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from xietong.kernel.errors import InvalidInput

# Fields of the real data run to tens of kilobytes; the csv module's default is 128 KiB.
csv.field_size_limit(16 * 1024 * 1024)


def read_messages(path: str | os.PathLike[str], *, labelled: bool) -> list[dict[str, Any]]:
    path = Path(path)
    required = {"text", "label"} if labelled else {"text"}
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = required - set(reader.fieldnames or [])
            if missing:
                raise InvalidInput(
                    f"{path} 缺少列：{', '.join(sorted(missing))}",
                    f"{path} lacks the column(s): {', '.join(sorted(missing))}",
                    details={"missing": sorted(missing)},
                )
            rows = []
            for row in reader:
                message: dict[str, Any] = {
                    "id": row.get("id") or "",
                    "title": row.get("title") or "",
                    "text": row.get("text") or "",
                }
                if labelled:
                    message["label"] = row.get("label") or ""
                rows.append(message)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InvalidInput(
            f"无法读取 {path}：{error}", f"cannot read {path}: {error}", details={"path": str(path)}
        ) from error
    return rows
