"""torchrun support for training: the process group (gloo on CPU, nccl on CUDA), DDP wrapping, means and
gradient averaging over the ranks, and what an elastic restart needs to know (its count, a checkpoint's job)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..models import resolve_device


def unwrap(m):
    """The module inside a DDP wrapper (the module itself when unwrapped)."""
    return m.module if hasattr(m, "module") else m


class Dist:
    """torchrun support: gloo on CPU, nccl on CUDA. A no-op when WORLD_SIZE is unset."""

    def __init__(self, device_arg: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = resolve_device(device_arg)
        if device.type == "cuda" and self.world > 1:
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        self.device = device
        if self.world > 1:
            import torch.distributed as dist

            if not dist.is_initialized():
                backend = "nccl" if device.type == "cuda" else "gloo"
                restart = elastic_restart()
                if restart and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
                    # torchrun keeps one store over its restarts, holding the failed attempt's peer
                    # addresses under the same keys: a restarted world could read those and fail to connect
                    from torch.distributed.constants import default_pg_timeout

                    addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
                    store = dist.TCPStore(addr, port, self.world, is_master=False, timeout=default_pg_timeout)
                    store = dist.PrefixStore(f"latentvideo/restart_{restart}", store)
                    dist.init_process_group(backend, store=store, rank=self.rank, world_size=self.world)
                else:
                    dist.init_process_group(backend)

    def wrap(self, module):
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def mean(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of a tensor over the ranks (x itself on one process)."""
        if self.world == 1:
            return x
        import torch.distributed as dist

        x = x.clone()
        dist.all_reduce(x)
        return x / self.world

    def average_grads(self, module) -> None:
        """Average the gradients of an unwrapped module over the ranks (a step taken outside DDP)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= self.world

    def close(self):
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


def elastic_restart() -> int:
    """How often torchrun has restarted the worker group (0: first attempt, or no torchrun)."""
    try:
        return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError:
        return 0


def checkpoint_owner(path: Path) -> str | None:
    """The torchrun job (TORCHELASTIC_RUN_ID) that wrote a checkpoint; None if none did or it cannot be read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return json.loads(f.metadata()["latentvideo"]).get("elastic_run")
    except Exception:
        return None
