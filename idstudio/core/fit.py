"""The largest training batch that fits the GPU, found by trying (for the one sentence an
out-of-memory run ends with, never a raw CUDA traceback)."""

from __future__ import annotations

from typing import Callable

import torch


def largest_fitting(fits: Callable[[int], bool], failed: int, smallest: int = 2) -> int | None:
    """The largest n below ``failed`` with ``fits(n)``: halving down to one that fits, then
    bisecting between it and the smallest that did not. None where not even ``smallest`` fits."""
    low, high = None, int(failed)  # low fits, high does not
    n = high // 2
    while n >= smallest:
        if fits(n):
            low = n
            break
        high, n = n, n // 2
    if low is None:
        return None
    while high - low > max(1, low // 16):  # within about 6 %: each try costs a forward and backward
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return low


def batch_fits(model: torch.nn.Module, height: int, width: int, device: torch.device, amp: bool) -> Callable[[int], bool]:
    """fits(n): one forward and backward of n pairs (2n crops) at the model's input size runs
    on ``device`` without running out of memory. The weights are left as they were."""

    def fits(n: int) -> bool:
        x = None
        try:
            x = torch.rand(2 * n, 3, height, width, device=device)
            if amp:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=amp):
                z = model(x)
            z.float().square().mean().backward()
            return True
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            del x
            model.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()

    return fits
