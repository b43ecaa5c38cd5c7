"""Which process reports: global rank 0 of a distributed job, never a forked child."""

from __future__ import annotations

import os
import sys

__all__ = ["global_rank"]

_RANK_VARS = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


def global_rank() -> int:
    """The global rank of this process: launcher variables first, then ``torch.distributed``.

    torchrun, DeepSpeed, Accelerate and Ray Train all set ``RANK``. trainwire never imports
    torch for this: it only asks ``torch.distributed`` when the program already did.
    """
    for var in _RANK_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    dist = sys.modules.get("torch.distributed")
    if dist is not None:
        try:
            if dist.is_available() and dist.is_initialized():
                return int(dist.get_rank())
        except Exception:  # a half-initialised process group is not our business
            return 0
    return 0
