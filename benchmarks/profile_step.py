"""Where a DHIF-Net training step spends its time: torch.profiler over one step at the
paper's configuration, grouped by operator, fused filter against reference.

    python benchmarks/profile_step.py [--device cpu|cuda] [--impl fused] [--batch 4] [--bf16] [--keep-taps]
"""
import argparse

import torch
import torch.nn.functional as F

from dhif.models import DHIFNet
from dhif.profiling import saved_tensor_bytes
from dhif.training import train_step

from measure import TINY


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--impl", default="fused", choices=["fused", "reference"])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--keep-taps", action="store_true", help="keep the taps instead of recomputing them")
    args = parser.parse_args()
    torch.manual_seed(0)
    size, tiny = (32, dict(stages=1, width=4, head_width=8)) if TINY else (96, {})
    model = DHIFNet(filter_impl=args.impl, recompute_taps=False if args.keep_taps else None, **tiny)
    model = model.to(args.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    hr = torch.rand(args.batch, 31, size, size, device=args.device)
    lr, msi = F.avg_pool2d(hr, 8), torch.rand(args.batch, 3, size, size, device=args.device)

    def step():
        train_step(model, optimizer, lr, msi, hr, args.bf16)

    step()  # warm-up
    with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.bf16):
        saved = saved_tensor_bytes(lambda: model(lr, msi))
    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if args.device == "cuda" else [])
    with torch.profiler.profile(activities=activities) as prof:
        step()
        if args.device == "cuda":
            torch.cuda.synchronize()
    key = "self_cuda_time_total" if args.device == "cuda" else "self_cpu_time_total"
    print(f"DHIF-Net training step, paper configuration, batch {args.batch}, {args.device}, filter {args.impl}, "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}{', taps kept' if args.keep_taps else ''}")
    print(f"tensors kept for the backward: {saved / 2 ** 20:.0f} MB")
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows))


if __name__ == "__main__":
    main()
