"""Where the shipped data files live: `sql/` and `pricing.yaml`.

They sit at the top of the repository. A built wheel carries them as package data under
`cost_api/_data/`; an editable install or a checkout finds them beside the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_root() -> Path:
    packaged = _PACKAGE / "_data"
    if (packaged / "pricing.yaml").is_file():
        return packaged
    return _PACKAGE.parent


def sql_dir() -> Path:
    return data_root() / "sql"


def builtin_pricing() -> Path:
    return data_root() / "pricing.yaml"
