"""CPU cost of two training settings of a model, side by side: CPU seconds per training image and per epoch.

Both settings train the same network (random weights, synthetic batches of the card's input size, the trainer's
loss and optimiser, channels-last, 1 thread) and take turns step by step, so a slow-down of the machine hits
both alike. Reported per setting: the median CPU seconds per image over the timed steps, the epoch cost for
``--images`` images, the whole training's predicted cost (epochs x epoch), and the ratio of the two.

Usage::

    python benchmarks/train_speed.py --model pixelformer_nano07_synthindoor \\
        --a '{"epochs": 6, "batch_size": 8}' --b '{"epochs": 4, "batch_size": 2}'

Settings are TrainConfig fields; only ``epochs``, ``batch_size``, ``crop_epochs``/``crop_size`` and
``low_res_epochs``/``low_res_size`` change the cost per image and are used here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from depthxai.runtime import pin_cpu_kernels


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="meter_xxs_synthindoor")
    p.add_argument("--a", type=json.loads, required=True, help="the first setting (JSON)")
    p.add_argument("--b", type=json.loads, required=True, help="the second setting (JSON)")
    p.add_argument("--images", type=int, default=576, help="train images per epoch (default: %(default)s)")
    p.add_argument("--images-per-round", type=int, default=16,
                   help="images each setting trains on per round (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=4, help="timed rounds after one warm-up (default: %(default)s)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    pins = pin_cpu_kernels()  # as the train command does, before torch loads
    import torch

    from depthxai.device import check_cpu_kernels

    check_cpu_kernels(pins)
    from depthxai.models import DepthModel, build_model, get_card
    from depthxai.models.train import silog_loss, smooth_upsampling

    torch.set_num_threads(1)
    card = get_card(args.model)

    def stages(setting: dict) -> list[tuple[int, tuple[int, int]]]:
        """(epochs, image size) of each part of the schedule."""
        epochs = int(setting["epochs"])
        parts = []
        low = int(setting.get("low_res_epochs", 0))
        crop = int(setting.get("crop_epochs", 0))
        for epoch in range(epochs):
            size = (tuple(setting["low_res_size"]) if epoch < low else tuple(card.input_size))
            size = tuple(setting["crop_size"]) if epoch < crop else size
            parts.append((1, (int(size[0]), int(size[1]))))
        merged: dict[tuple[int, int], int] = {}
        for n, size in parts:
            merged[size] = merged.get(size, 0) + n
        return [(n, size) for size, n in merged.items()]

    runs = {}
    for name, setting in (("a", args.a), ("b", args.b)):
        for _, size in stages(setting):
            torch.manual_seed(0)
            model = DepthModel(build_model(args.model), card).train().to(memory_format=torch.channels_last)
            smooth_upsampling(model.net)
            runs[(name, size)] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4), int(setting["batch_size"]))
    per_image: dict[tuple[str, tuple[int, int]], list[float]] = {key: [] for key in runs}
    for round_ in range(args.rounds + 1):
        for key, (model, optimiser, batch) in runs.items():
            x = torch.rand(batch, 3, *key[1]).contiguous(memory_format=torch.channels_last)
            gt = torch.rand(batch, 1, *key[1]) * 5 + 1
            steps = max(1, args.images_per_round // batch)
            start = time.process_time()
            for _ in range(steps):
                loss = silog_loss(model(x), gt, gt > 0, 0.01)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
            if round_:
                per_image[key].append((time.process_time() - start) / (steps * batch))
    totals = {}
    for name, setting in (("a", args.a), ("b", args.b)):
        total = 0.0
        for epochs, size in stages(setting):
            cost = statistics.median(per_image[(name, size)])
            total += epochs * args.images * cost
            print(f"{name}: {size[0]}x{size[1]}, batch {setting['batch_size']}: {1000 * cost:.1f} ms CPU per image, "
                  f"{args.images * cost:.0f} s per epoch, {epochs} epochs")
        totals[name] = total
        print(f"{name}: {json.dumps(setting)} -> {total:.0f} s CPU for the training steps")
    print(f"b / a = {totals['b'] / totals['a']:.2f}")


if __name__ == "__main__":
    main()
