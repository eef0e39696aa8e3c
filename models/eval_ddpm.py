"""How recognisable the bundled ``ddpm``'s shapes are: a shape classifier's accuracy on its samples.

A small CNN (three conv-BatchNorm-ReLU-maxpool blocks, global max pooling, 3 logits) is trained on
fresh labelled shapes (:func:`shapes.make_labeled_shapes`, seed 1, never the DDPM's training
seed) and checked on held-out data (seed 2). It then classifies images the DDPM samples
through accelkit's own sampler (:mod:`accelkit.diffusion`, torch fp32, the model's reference sampler from its
``accelkit.json`` unless ``--scheduler``/``--steps``/``--guidance`` say otherwise) for each
class label. An
accuracy near the classifier's data accuracy means the samples show the asked-for shape;
chance is 1/3.

    python models/eval_ddpm.py                       # ~2-4 minutes on 2 cores
    python models/eval_ddpm.py --per-class 16 --steps 20 --scheduler dpm++ --guidance 1
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import shapes
import torch
from torch import nn


def classifier() -> nn.Sequential:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(3, 32),
        *block(32, 64),
        *block(64, 64),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(64, len(shapes.SHAPES)),
    )


def train_classifier(n: int, epochs: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    x, y = shapes.make_labeled_shapes(n, 32, seed=seed)
    xt, yt = torch.from_numpy(x * 2 - 1), torch.from_numpy(y)
    net = classifier()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, 64):
            idx = perm[i : i + 64]
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Module, images: np.ndarray, labels: np.ndarray) -> tuple[float, list[float]]:
    pred = net(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))).argmax(1).numpy()
    per = [float((pred[labels == c] == c).mean()) for c in range(len(shapes.SHAPES))]
    return float((pred == labels).mean()), per


def infer_batches(runner: Any, feeds: dict[str, np.ndarray], batch: int) -> np.ndarray:
    """All images of ``feeds`` from an active runner, ``batch`` at a time."""
    n = len(next(iter(feeds.values())))
    return np.concatenate(
        [runner.infer({k: v[i : i + batch] for k, v in feeds.items()}) for i in range(0, n, batch)]
    )


def labelled_samples(
    runner: Any, spec: Any, per_class: int, seed: int, batch: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """``per_class`` samples of each class from an active diffusion runner: the images and
    their labels (0, 1, 2, 0, ...; noise from ``LatentSampler(spec, seed)``), in batches."""
    from accelkit.sampler import LatentSampler

    n = per_class * len(shapes.SHAPES)
    feeds = LatentSampler(spec, seed=seed, batch_size=n).inputs(0, n)
    feeds["label"] = np.arange(n, dtype=np.int64) % len(shapes.SHAPES)
    return infer_batches(runner, feeds, batch), feeds["label"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default=str(shapes.WEIGHTS / "ddpm"))
    p.add_argument("--per-class", type=int, default=32, help="samples per class label")
    p.add_argument("--scheduler", default="default", help="default: the model's reference sampler")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--guidance", type=float, default=None, help="1: no guidance")
    p.add_argument("--seed", type=int, default=0, help="LatentSampler seed of the noise")
    p.add_argument("--train", type=int, default=6000, help="classifier training images")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    from accelkit.diffusion import SamplerSettings, create_diffusion_runner, load_pipeline

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    net = train_classifier(a.train, a.epochs, seed=1)
    hx, hy = shapes.make_labeled_shapes(600, 32, seed=2)
    data_acc, data_per = accuracy(net, hx * 2 - 1, hy)
    t_cls = time.perf_counter() - t0

    model = load_pipeline(a.folder)
    n = a.per_class * len(shapes.SHAPES)
    runner = create_diffusion_runner(
        model,
        "torch",
        settings=SamplerSettings(a.scheduler, a.steps, guidance=a.guidance),
        options={"threads": a.threads},
    )
    t1 = time.perf_counter()
    with runner:
        images, labels = labelled_samples(runner, model.spec, a.per_class, a.seed)
    t_sample = time.perf_counter() - t1
    acc, per = accuracy(net, images, labels)
    result = {
        "sampler": runner.sampling.to_dict(),
        "samples": n,
        "sample_accuracy": round(acc, 4),
        "sample_accuracy_per_class": dict(zip(shapes.SHAPES, [round(v, 4) for v in per])),
        "classifier_data_accuracy": round(data_acc, 4),
        "classifier_data_accuracy_per_class": dict(
            zip(shapes.SHAPES, [round(v, 4) for v in data_per])
        ),
        "pixel_std": {
            "samples": round(float(images.std()), 4),
            "data": round(float((hx * 2 - 1).std()), 4),
        },
        "seconds": {"classifier": round(t_cls, 1), "sampling": round(t_sample, 1)},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
