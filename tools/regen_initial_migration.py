"""Regenerate the initial Alembic revision from ``analytics/store/schema.py``.

Used only before the first release, while the schema is still being laid out: after a
release, schema changes get their own revision instead. Deterministic: the same schema
gives the same file (the create date is fixed).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command

from analytics.store.db import MIGRATIONS_DIR, alembic_config

TARGET = MIGRATIONS_DIR / "versions" / "0001_initial_schema.py"


def main() -> int:
    TARGET.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as d:
        cfg = alembic_config(f"sqlite:///{Path(d) / 'empty.db'}")
        command.revision(cfg, message="initial schema", autogenerate=True, rev_id="0001")
    text = TARGET.read_text()
    text = re.sub(r"Create Date: .*", "Create Date: 2026-11-23", text)
    TARGET.write_text(text)
    subprocess.run([sys.executable, "-m", "ruff", "format", "-q", str(TARGET)], check=False)
    subprocess.run([sys.executable, "-m", "ruff", "check", "-q", "--fix", str(TARGET)],
                   check=False)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
