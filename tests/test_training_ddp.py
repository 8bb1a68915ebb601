"""Two CPU processes (gloo) give the gradients of one process on the combined batch (training.loop's averaging)."""
import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from conftest import REFERENCE
from training import recipes, step, vgg19
from test_training_step import batch_of, build

TRAINING = REFERENCE / "training"


def _reference():
    with np.load(TRAINING / "train_step.npz") as data:
        return dict(data)


def _gradients(model, batch, loss, after_backward=None):
    model.zero_grad()
    _, total, _ = step.forward_and_loss(model, loss, batch, 1_500_001)
    total.backward()
    if after_backward:
        after_backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def _worker(rank, port, folder):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    reference = _reference()
    model = build(reference)
    loss = step.WeightedLoss(recipes.loss_weights("style"), vgg19.VGG19Features.from_file(str(TRAINING /
                                                                                               "vgg19_narrow.mat")))
    share = {k: v[rank:rank + 1] for k, v in batch_of(reference).items()}

    def average():
        for p in model.parameters():
            dist.all_reduce(p.grad)
            p.grad.div_(2)

    gradients = _gradients(model, share, loss, average)
    if rank == 0:
        torch.save(gradients, os.path.join(folder, "ddp.pt"))
    dist.destroy_process_group()


def test_two_processes_average_to_the_combined_batch(tmp_path, one_thread):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    reference = _reference()
    model = build(reference)
    loss = step.WeightedLoss(recipes.loss_weights("style"), vgg19.VGG19Features.from_file(str(TRAINING /
                                                                                               "vgg19_narrow.mat")))
    whole = _gradients(model, batch_of(reference), loss)
    split = torch.load(tmp_path / "ddp.pt", weights_only=True)
    worst = max(float((split[k] - g).norm() / g.norm()) for k, g in whole.items())
    assert worst <= 1e-5
