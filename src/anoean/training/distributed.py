"""Training on several processes with PyTorch's DistributedDataParallel (``torchrun``).

A run started by ``torchrun`` opens a :func:`session`; while it is open, the fit template
(:meth:`anoean.training.neural.NeuralDetector._fit`) trains data-parallel:

* **Data.** Every rank holds the table (the preprocessing and the hold-out split are fitted
  identically on each), and each epoch a :class:`torch.utils.data.DistributedSampler`, whose
  epoch is set every epoch, gives each rank its own shard of the normal training rows
  (:class:`anoean.training.loop.ShardedBatches`). A rank's batch holds
  ``ceil(batch_size / world_size)`` normal rows, so the global batch and the number of steps
  per epoch are those of a single process. Every rank sees all the labelled anomalies,
  cycled as in a single process.
* **Gradients.** Each optimiser group's parameters are wrapped in a
  :class:`~torch.nn.parallel.DistributedDataParallel` module whose forward passes the group's
  loss through (:func:`group_sync`): its reducer all-reduces (averages) the group's gradients,
  in buckets, during the backward pass. The adversarial step
  (:class:`anoean.training.adversarial.AdversarialStep`) sends each loss through it before its
  backward pass, so the alternation (D step with E frozen, then the E step with D frozen) and
  its order are unchanged. The parameters start equal (DDP broadcasts rank 0's) and stay
  equal; :func:`check_replicas` verifies it after training.
* **Random draws.** Each rank draws its prior samples and its anomaly batches from its own
  generator (:func:`rank_seed`), so the ranks' samples are independent, as one process's
  would be across its larger batch.
* **Validation.** Rank 0 computes the per-epoch validation score and broadcasts it
  (:func:`on_rank0`), so every rank takes the same early-stopping decision.
* **The Gaussian.** mu and Sigma are all-reduced from the count, the sum and the sum of
  centred outer products of each rank's share of the encoded normals (:func:`moments`).

Backends: gloo on CPU, NCCL on CUDA devices (one device per rank, ``LOCAL_RANK``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

#: the variables torchrun sets in each process it starts
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class DistributedError(ValueError):
    """A distributed run cannot start, or its ranks disagree. A ``ValueError`` so that the
    command line reports it as a one-line error."""


@dataclass(frozen=True)
class Context:
    """This process's place in the run."""

    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: it validates, saves and logs."""
        return self.rank == 0


_ACTIVE: Context | None = None


def current() -> Context | None:
    """The open :func:`session`'s context, or None in a single-process run."""
    return _ACTIVE


def is_main_process() -> bool:
    """True outside a distributed run, and on rank 0 inside one."""
    return _ACTIVE is None or _ACTIVE.is_main


def launched_by_torchrun() -> bool:
    return all(v in os.environ for v in TORCHRUN_VARIABLES)


@contextmanager
def session(device: str = "auto") -> Iterator[Context]:
    """Join the process group of the ``torchrun`` launch this process belongs to.

    ``device`` is the detectors' device parameter: "auto" takes this rank's GPU
    (``cuda:LOCAL_RANK``, NCCL) when CUDA is available, else the CPU (gloo); "cpu" forces
    gloo on the CPU.
    """
    global _ACTIVE
    import torch.distributed as dist

    if not launched_by_torchrun():
        missing = [v for v in TORCHRUN_VARIABLES if v not in os.environ]
        raise DistributedError(
            "a distributed fit must be started by torchrun (missing "
            f"{', '.join(missing)}), e.g. torchrun --standalone --nproc_per_node 2 -m anoean "
            "fit data.parquet --out model/ --distributed"
        )
    if _ACTIVE is not None:
        raise DistributedError("a distributed session is already open in this process")
    local_rank = int(os.environ["LOCAL_RANK"])
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DistributedError(f"device={device!r} but CUDA is not available")
    if use_cuda:
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    dist.init_process_group(backend)
    try:
        _ACTIVE = Context(dist.get_rank(), dist.get_world_size(), local_rank, backend, dev)
        yield _ACTIVE
    finally:
        _ACTIVE = None
        dist.destroy_process_group()


def rank_seed(seed: int) -> int:
    """The seed of this rank's training draws: ``seed`` itself on rank 0 (and in one
    process), a distinct one on each other rank."""
    ctx = _ACTIVE
    if ctx is None or ctx.rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, ctx.rank]).generate_state(1)[0])


class _PassLoss(nn.Module):
    """Holds one optimiser group's parameters; its forward returns the loss it is given, so
    that a DistributedDataParallel wrapper of it all-reduces their gradients during the
    loss's backward pass."""

    def __init__(self, params: Sequence[nn.Parameter]) -> None:
        super().__init__()
        self.params = nn.ParameterList(params)

    def forward(self, loss: torch.Tensor) -> torch.Tensor:
        return loss


def group_sync(params: Sequence[nn.Parameter]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A DistributedDataParallel module over ``params``: call it on the group's loss just
    before that loss's backward pass (``loss = sync(loss); loss.backward()``), and the
    group's gradients come out averaged over the ranks. Rank 0's values of ``params`` are
    broadcast to the other ranks when it is built."""
    from torch.nn.parallel import DistributedDataParallel

    ctx = _require()
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(_PassLoss(params), device_ids=device_ids)


def _require() -> Context:
    if _ACTIVE is None:
        raise DistributedError("no distributed session is open")
    return _ACTIVE


def on_rank0(evaluate: Callable[[], float | None]) -> Callable[[], float | None]:
    """``evaluate`` run on rank 0 only, its result (a float or None) broadcast to all."""
    ctx = _ACTIVE
    if ctx is None:
        return evaluate
    import torch.distributed as dist

    def run() -> float | None:
        out = torch.zeros(2, dtype=torch.float64, device=ctx.device)
        if ctx.is_main:
            score = evaluate()
            if score is not None:
                out[0], out[1] = 1.0, float(score)
        dist.broadcast(out, 0)
        return float(out[1]) if bool(out[0]) else None

    return run


def mean_over_ranks(sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each loss sum averaged over the ranks (one all-reduce); as is in one process."""
    ctx = _ACTIVE
    if ctx is None or not sums:
        return sums
    import torch.distributed as dist

    keys = list(sums)
    flat = torch.stack([torch.as_tensor(sums[k]).double().reshape(()) for k in keys])
    flat = flat.to(ctx.device)
    dist.all_reduce(flat)
    flat /= ctx.world_size
    return {k: flat[i] for i, k in enumerate(keys)}


def shard(n: int) -> np.ndarray:
    """This rank's rows among ``n`` (rank r takes rows r, r + W, ...); all of them in one
    process."""
    ctx = _ACTIVE
    if ctx is None:
        return np.arange(n)
    return np.arange(ctx.rank, n, ctx.world_size)


def moments(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mu and Sigma (ddof=1) of the codes of every rank, each rank holding its share
    ``codes`` (k, d): all-reduced from the count and the sum, then from the sum of outer
    products of the codes centred on that mu (centring first keeps the float64 sum exact to
    round-off). In one process, the codes' own mean and covariance."""
    ctx = _ACTIVE
    if ctx is None:
        z64 = np.asarray(codes, dtype=np.float64)
        d = z64.shape[1]
        if z64.shape[0] < 2:
            return z64.mean(0), np.zeros((d, d))
        return z64.mean(0), np.cov(z64, rowvar=False, ddof=1).reshape(d, d)
    import torch.distributed as dist

    z = torch.from_numpy(np.ascontiguousarray(codes, dtype=np.float64)).to(ctx.device)
    d = z.shape[1]
    head = torch.cat([torch.tensor([float(z.shape[0])], dtype=torch.float64), z.sum(0).cpu()])
    head = head.to(ctx.device)
    dist.all_reduce(head)
    n = float(head[0])
    if n < 1:
        raise ValueError("need at least one code to fit the Gaussian; the ranks hold none")
    mu = head[1:] / n
    c = z - mu
    outer = c.T @ c
    dist.all_reduce(outer)
    if n < 2:
        return mu.cpu().numpy(), np.zeros((d, d))
    return mu.cpu().numpy(), (outer / (n - 1)).cpu().numpy()


def check_replicas(modules: dict[str, nn.Module]) -> None:
    """Raise :class:`DistributedError` unless every rank holds exactly rank 0's weights."""
    ctx = _ACTIVE
    if ctx is None:
        return
    import torch.distributed as dist

    tensors = [
        t.detach().reshape(-1).double()
        for m in modules.values()
        for t in m.state_dict().values()
        if t.is_floating_point()
    ]
    if not tensors:
        return
    mine = torch.cat(tensors).to(ctx.device)
    ref = mine.clone()
    dist.broadcast(ref, 0)
    differ = torch.tensor([float(not torch.equal(mine, ref))], device=ctx.device)
    dist.all_reduce(differ)
    if float(differ) > 0:
        raise DistributedError(
            f"after training, {int(float(differ))} rank(s) hold weights that differ from rank "
            "0's: the gradient synchronisation failed"
        )
