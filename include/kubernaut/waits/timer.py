"""A pause (``timer``): done once the clock passes ``until`` (epoch seconds)."""

from __future__ import annotations

import time
from typing import Any

from kubernaut.waits.clients import WaitClients
from kubernaut.waits.spec import Done, Pending, PollResult


async def poll(clients: WaitClients, args: dict[str, Any], memo: dict[str, Any]) -> PollResult:
    left = float(args["until"]) - time.time()
    return Done({"waited_seconds": args.get("seconds")}) if left <= 0 else Pending(f"{left:.1f}s left")
