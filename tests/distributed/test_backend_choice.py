"""Which backend and device a torchrun rank takes (anoean.training.distributed.session):
NCCL on this rank's GPU where CUDA is available, gloo on the CPU otherwise or with
device="cpu". The process group itself is replaced by a recorder: no GPU is needed to check
the choice (the NCCL run itself needs GPUs, docs/scale.md)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from anoean.training import distributed


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import torch.distributed as dist

    seen: dict[str, Any] = {}
    env = {
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "x",
        "MASTER_PORT": "1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: seen.update(backend=backend))
    monkeypatch.setattr(dist, "destroy_process_group", lambda: seen.update(destroyed=True))
    monkeypatch.setattr(dist, "get_rank", lambda: 3)
    monkeypatch.setattr(dist, "get_world_size", lambda: 4)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: seen.update(set_device=d))
    return seen


@pytest.mark.parametrize(
    "cuda,device,backend,expected",
    [
        (True, "auto", "nccl", torch.device("cuda", 1)),  # this rank's GPU: LOCAL_RANK
        (True, "cpu", "gloo", torch.device("cpu")),
        (False, "auto", "gloo", torch.device("cpu")),
    ],
)
def test_rank_takes_nccl_on_its_gpu_else_gloo(
    recorder: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    cuda: bool,
    device: str,
    backend: str,
    expected: torch.device,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    with distributed.session(device) as ctx:
        assert (ctx.backend, ctx.device, ctx.rank, ctx.world_size) == (backend, expected, 3, 4)
        assert ctx.local_rank == 1 and distributed.current() is ctx
    assert recorder["backend"] == backend and recorder["destroyed"]
    assert recorder.get("set_device") == (expected if backend == "nccl" else None)
    assert distributed.current() is None


def test_cuda_asked_without_cuda_is_refused(
    recorder: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(distributed.DistributedError, match="CUDA is not available"):
        with distributed.session("cuda"):
            pass
    assert "backend" not in recorder  # refused before joining any process group
