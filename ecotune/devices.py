"""The torch device work runs on: resolving a device name, describing the device,
waiting for its queued work, and giving local workers a GPU each.

Shared by the built-in trainer (``[training] device``) and measurement windows
(``ecotune.measure(..., device=...)``). Device names: ``"auto"`` (this process's current
CUDA GPU, normally the first visible one, if there is one, else the CPU), ``"cpu"``,
``"cuda"`` (the current CUDA GPU) and ``"cuda:N"``. torch is imported only by the
functions that need it.
"""

from __future__ import annotations

import functools
import os
import platform
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ecotune.names import DEVICE_PATTERN

if TYPE_CHECKING:
    import torch

__all__ = ["DeviceError", "resolve_device", "device_info", "synchronizer", "cuda_indices",
           "parse_gpus", "check_gpus", "worker_gpu", "job_device"]


class DeviceError(ValueError):
    """A device that cannot be used here; the message names it and says why, in one line."""


def _cuda_missing(torch: Any) -> str:
    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return ("no CUDA GPU is visible (no NVIDIA driver or GPU"
            + (f", or CUDA_VISIBLE_DEVICES={visible!r} hides them" if visible is not None
               else "") + ")")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` that ``device`` names here.

    Raises:
        DeviceError: a name that is not a device, or a CUDA device this machine lacks
            (``auto`` never raises: without CUDA it is the CPU).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device("gpu")
        Traceback (most recent call last):
        ...
        ecotune.devices.DeviceError: device 'gpu': expected "auto", "cpu", "cuda" or "cuda:N"
    """
    import torch

    if isinstance(device, torch.device):
        kind, index = device.type, device.index
    else:
        if not isinstance(device, str) or not re.match(DEVICE_PATTERN, device):
            raise DeviceError(f'device {device!r}: expected "auto", "cpu", "cuda" or "cuda:N"')
        kind, _, number = device.partition(":")
        index = int(number) if number else None
    if kind == "cpu" or (kind == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if kind not in ("auto", "cuda"):
        raise DeviceError(f"device {str(device)!r}: only the CPU and CUDA GPUs are supported")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {str(device)!r}: {_cuda_missing(torch)}")
    if index is None:  # "cuda" is the current GPU, as in torch
        index = torch.cuda.current_device() if torch.cuda.is_initialized() else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {str(device)!r}: only {count} CUDA GPU(s) visible here "
                          f"(cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", index)


def job_device(device: str, job: int | None) -> str:
    """The device trial thread ``job`` (``[study] n_jobs``) trains on: with several CUDA
    GPUs visible, ``"auto"`` and ``"cuda"`` become GPU ``job mod count`` (``cuda:N``), so
    that trials at once each have a GPU of their own, and its energy whole; with one GPU
    (or ``job`` None, or a fixed ``cuda:N``/``cpu``) ``device`` is kept, and the trials at
    once share it (and its energy, equally).

    Example:
        >>> job_device("cpu", 1), job_device("auto", None)
        ('cpu', 'auto')
    """
    if job is None or device not in ("auto", "cuda"):
        return device
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return device
    return f"cuda:{job % torch.cuda.device_count()}"


def cuda_indices(device: torch.device) -> tuple[int, ...]:
    """The CUDA device indices ``device`` uses: ``()`` for the CPU (what an energy meter
    is asked to read, :func:`ecotune.energy.get_meter`'s ``gpus``).

    Example:
        >>> import torch
        >>> cuda_indices(torch.device("cpu")), cuda_indices(torch.device("cuda", 1))
        ((), (1,))
    """
    return (device.index or 0,) if device.type == "cuda" else ()


@functools.cache
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_info(device: torch.device) -> dict[str, Any]:
    """What a trial records about its device: type, index, name (and the GPU's UUID, and
    ``CUDA_VISIBLE_DEVICES`` where it is set, since ``cuda:0`` of a worker given GPU 3 is
    GPU 3 of the machine).

    Example:
        >>> import torch
        >>> info = device_info(torch.device("cpu"))
        >>> info["type"], info["index"], isinstance(info["name"], str)
        ('cpu', None, True)
    """
    info: dict[str, Any] = {"type": device.type, "index": None, "name": _cpu_name()}
    if device.type == "cuda":
        import torch

        index = device.index or 0
        properties = torch.cuda.get_device_properties(index)
        info.update(index=index, name=properties.name)
        uuid = getattr(properties, "uuid", None)
        if uuid is not None:
            info["uuid"] = f"GPU-{uuid}"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        info["cuda_visible_devices"] = visible
    return info


def _no_sync() -> None:
    """Work on the CPU is done when the call that did it returns: nothing to wait for."""


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits until ``device`` has finished the work queued on it.

    CUDA kernels run asynchronously: a meter read right after the Python call that queued
    them would end the window before the GPU's work (as Zeus, a window synchronises first).

    Example:
        >>> import torch
        >>> synchronizer(torch.device("cpu"))()  # nothing to wait for
    """
    if device.type != "cuda":
        return _no_sync
    import torch

    return functools.partial(torch.cuda.synchronize, device)


# --- one GPU per local worker (ecotune run --gpus) -------------------------------------

_GPU_ENTRY = re.compile(r"^([0-9]+|GPU-[0-9A-Za-z-]+|MIG-[0-9A-Za-z/-]+)$")


def parse_gpus(value: str) -> list[str]:
    """The GPUs of ``--gpus 0,1`` as ``CUDA_VISIBLE_DEVICES`` entries of the machine.

    An index N is this process's ``cuda:N``: the N-th entry of ``CUDA_VISIBLE_DEVICES``
    where that is set (a batch system's allocation stays the limit), else the GPU NVML
    numbers N. UUIDs (``GPU-...``, ``MIG-...``) pass through.

    Raises:
        DeviceError: an empty list or an entry that is neither an index nor a UUID, or
            an index past ``CUDA_VISIBLE_DEVICES``.

    Example:
        >>> parse_gpus("0, 1,GPU-8a1b")
        ['0', '1', 'GPU-8a1b']
    """
    entries = [e.strip() for e in value.split(",")]
    bad = [e for e in entries if not _GPU_ENTRY.match(e)]
    if not value.strip() or bad:
        raise DeviceError(f"--gpus {value!r}: expected GPU indices or UUIDs separated by "
                          f"commas, e.g. --gpus 0,1,2,3 (got {bad[0] if bad else value!r})")
    from ecotune.energy import visible_gpu_ids

    visible = visible_gpu_ids()
    if visible is None:
        return entries
    out = []
    for entry in entries:
        if entry.isdigit():
            if int(entry) >= len(visible):
                raise DeviceError(f"--gpus: GPU {entry} is not visible to this process "
                                  f"(CUDA_VISIBLE_DEVICES={','.join(visible)})")
            entry = visible[int(entry)]
        out.append(entry)
    return out


def check_gpus(entries: Sequence[str]) -> None:
    """Check with NVML that this machine has every GPU of ``entries`` (no CUDA call, so
    ``CUDA_VISIBLE_DEVICES`` can still be set for this process afterwards).

    Raises:
        DeviceError: NVML is not usable here, or a GPU does not exist.
    """
    from ecotune.energy import find_gpu, nvml_gpu_count

    try:
        count = nvml_gpu_count()
    except ModuleNotFoundError:
        raise DeviceError("--gpus: nvidia-ml-py is not installed, so the GPUs cannot be "
                          "checked: pip install nvidia-ml-py") from None
    except Exception as err:
        raise DeviceError(f"--gpus {','.join(entries)}: no NVIDIA GPU here (NVML: "
                          f"{_one_line(err)})") from None
    for entry in entries:
        try:
            find_gpu(entry)
        except Exception as err:
            raise DeviceError(f"--gpus: GPU {entry} does not exist here ({count} GPU(s): "
                              f"{_one_line(err)})") from None


def _one_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def worker_gpu(gpus: Sequence[str], worker_index: int) -> str:
    """The GPU of worker ``worker_index`` (0 is the process that started the others).

    Example:
        >>> [worker_gpu(["0", "1"], i) for i in range(5)]
        ['0', '1', '0', '1', '0']
    """
    return gpus[worker_index % len(gpus)]
