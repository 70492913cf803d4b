"""Where tokenops finds its checked-in deployment files."""

from __future__ import annotations

import os
from pathlib import Path

from tokenops.errors import TokenopsError


def deploy_dir() -> Path:
    """The `deploy/` folder: `TOKENOPS_DEPLOY_DIR`, else the one beside this source tree."""
    configured = os.environ.get("TOKENOPS_DEPLOY_DIR")
    candidate = Path(configured) if configured else Path(__file__).resolve().parents[1] / "deploy"
    if not (candidate / "local" / "kafka" / "pom.xml").exists():
        raise TokenopsError(
            f"cannot find tokenops' deploy/ folder at {candidate}",
            hint="set TOKENOPS_DEPLOY_DIR to the deploy/ folder of a tokenops checkout",
        )
    return candidate
