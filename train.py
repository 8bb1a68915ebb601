"""Fine-tunes (or trains) FILM with the original's losses, optimizer and schedules.

    python train.py RUN_DIR --data PATH [--data PATH ...] [--start MODEL | --config JSON]
                    [--recipe style|vgg|l1] [--vgg_file imagenet-vgg-verydeep-19.mat] [--steps N] ...

A thin command line over ``training.loop`` (see its docstring for the run
folder, checkpoints and resuming, and ``training.data`` for the data layouts).
"""
import argparse
import json
import os
import sys
import time

import cli  # first: it sets how OpenMP threads wait before torch loads
import torch

import runtime
from interpolator import STYLE_CONFIG
from training import augment, data, loop, recipes

EPILOG = """\
data layouts (--data, repeatable; recognised by their content):
  Vimeo-90K    a folder with tri_trainlist.txt and sequences/<seq>/<clip>/
               im1.png, im2.png, im3.png (the original's training set);
               tri_testlist.txt, if there, is the validation split
  triplets     a folder whose subfolders (any depth) each hold exactly three
               images, in name order x0, y, x1; a fixed share
               (--val_fraction, by a hash of the folder name) is validation
  footage      a video, a folder of frames, or a folder of videos / frame
               folders: triplets of kept frames (i, i+g, i+2g), g =
               --frame_gap; held frames (--dedup_threshold) are dropped,
               triplets across a scene cut (--scene_threshold) skipped; the
               last --val_fraction of each source is validation (no frame
               in both); video frames are decoded once to RUN_DIR/frames/

recipes (the original's gin files; every value can be overridden):
  style  l1 1.0; vgg 1.0, 0.25 after step 1,500,000; style 0.0, 40.0 after
  vgg    l1 1.0; vgg 1.0, 0.25 after step 1,500,000
  l1     l1 1.0
  all:   Adam (as Keras computes it), lr 1e-4, ExponentialDecay by 0.464158
         every 750,000 steps (staircase); batch 8; random 256x256 crops;
         rot90, flip, rotate (+-45 deg), time reverse. The original ran
         3,000,000 steps.
  --loss_weight NAME=VALUE or NAME=BOUNDARY,...:VALUE,... overrides one
  loss's schedule: --loss_weight style=0, --loss_weight vgg=1500000:1,0.25.
  vgg and style need MatConvNet's VGG-19 (--vgg_file, 510 MB): https://
  www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat

the run folder RUN_DIR:
  checkpoint.pt every --checkpoint_every steps and on Ctrl-C / SIGTERM
  (after the step in progress); run the same command again to resume, also
  after a kill -9: the resumed run computes exactly the steps an
  uninterrupted one does. log.jsonl (losses per step, validation L1 and
  PSNR), tensorboard/ (tensorboard --logdir RUN_DIR/tensorboard), and at the
  end model.pt: our TorchScript file, for inference.py and evaluate.py.

several processes: torchrun --nproc_per_node N train.py ... (gloo on the
CPU); each process takes batch/N items of every batch, gradients averaged.

examples:
  python train.py runs/mine --data clip.mp4 --start film_net_fp32.pt \\
      --recipe l1 --steps 2000
  python train.py runs/vimeo --data vimeo_triplet --recipe style \\
      --vgg_file imagenet-vgg-verydeep-19.mat --steps 3000000
"""


def loss_weight(text: str):
    """NAME=VALUE or NAME=B1,B2:V0,V1,V2 → (name, [boundaries, values])."""
    name, _, spec = text.partition("=")
    try:
        if ":" in spec:
            boundaries, values = spec.split(":")
            schedule = [[int(b) for b in boundaries.split(",")], [float(v) for v in values.split(",")]]
        else:
            schedule = [[0], [float(spec)] * 2]
        recipes.PiecewiseConstant(*schedule)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE or NAME=BOUNDARIES:VALUES, got {text!r} "
                                         f"({error})") from None
    if name not in ("l1", "l2", "vgg", "style"):
        raise argparse.ArgumentTypeError(f"unknown loss {name!r} (l1, l2, vgg, style)")
    return name, schedule


def build_parser() -> argparse.ArgumentParser:
    parser = cli.make_parser("train.py", "Fine-tune or train FILM with the original's losses and schedules.",
                             EPILOG)
    number = cli.whole_number
    parser.add_argument("run_dir", help="folder of the run: checkpoints, logs, the exported model")
    parser.add_argument("--data", action="append", required=True, metavar="PATH",
                        help="training data (see the layouts below); repeatable")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--start", metavar="MODEL", help="start from this model file (our TorchScript or state "
                       "dict, the original PyTorch port's, ComfyUI's safetensors)")
    start.add_argument("--config", metavar="JSON", help="train from scratch: 'style' (default) or a JSON file "
                       "or string of the Interpolator's settings")
    parser.add_argument("--recipe", choices=sorted(recipes.RECIPES), default="style",
                        help="the original's loss weights by step (default style)")
    parser.add_argument("--loss_weight", type=loss_weight, action="append", default=[], metavar="NAME=SCHEDULE",
                        help="override one loss's weight schedule (see below)")
    parser.add_argument("--vgg_file", help="MatConvNet's imagenet-vgg-verydeep-19.mat (vgg and style losses)")
    parser.add_argument("--steps", type=number(1), default=1000, help="train until this step (default 1000)")
    parser.add_argument("--batch_size", type=number(1), default=recipes.DEFAULTS["batch_size"])
    parser.add_argument("--crop", type=number(0), default=recipes.DEFAULTS["crop_size"],
                        help="random crop size (default 256; 0: whole frames)")
    parser.add_argument("--learning_rate", type=cli.positive_number(), default=recipes.DEFAULTS["learning_rate"])
    parser.add_argument("--decay_steps", type=number(1), default=recipes.DEFAULTS["decay_steps"])
    parser.add_argument("--decay_rate", type=cli.positive_number(), default=recipes.DEFAULTS["decay_rate"])
    parser.add_argument("--no_staircase", action="store_true", help="decay smoothly instead of in stairs")
    parser.add_argument("--augment", default=",".join(augment.AUGMENTATIONS),
                        help="comma-separated augmentations, '' for none (default: all four)")
    parser.add_argument("--seed", type=number(0), default=0, help="data order, crops, augmentation, init")
    parser.add_argument("--val_fraction", type=float, default=0.1, help="share held out for validation")
    parser.add_argument("--val_every", type=number(0), default=500, help="validate every N steps (0: at start "
                        "and end only)")
    parser.add_argument("--val_count", type=number(0), default=32, help="validation triplets used (default 32)")
    parser.add_argument("--val_crop", type=number(0), default=256, help="centre crop of validation frames")
    parser.add_argument("--frame_gap", type=number(1), default=1, help="footage: frames between x0 and y")
    parser.add_argument("--scene_threshold", type=float, default=0.2, help="footage: scene-cut threshold")
    parser.add_argument("--dedup_threshold", type=float, default=0.05, help="footage: held-frame threshold "
                        "(negative: keep every frame)")
    parser.add_argument("--checkpoint_every", type=number(0), default=100, help="checkpoint interval in steps")
    parser.add_argument("--workers", type=number(0), default=2, help="data loading processes (default 2)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="autocast precision of the forward pass (default fp32)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, mps")
    parser.add_argument("--threads", type=number(1), help="CPU threads (default: torch's)")
    parser.add_argument("--no_export", action="store_true", help="do not write RUN_DIR/model.pt at the end")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def model_config(text):
    if text is None or text == "style":
        return None if text is None else dict(STYLE_CONFIG)
    try:
        config = json.loads(open(text).read() if os.path.isfile(text) else text)
    except (OSError, ValueError) as error:
        raise cli.UserError(f"--config: neither 'style' nor a JSON file or string ({error})") from None
    return config.get("config", config)  # also the reference folder's {"config": ..., "variables": ...}


def run(args) -> int:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if args.threads:
        torch.set_num_threads(args.threads)
    if world_size > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo" if args.device == "cpu" else "nccl")
    augmentations = [a for a in args.augment.split(",") if a]
    bad = [a for a in augmentations if a not in augment.AUGMENTATIONS]
    if bad:
        raise cli.UserError(f"unknown augmentation {bad[0]!r} (known: {', '.join(augment.AUGMENTATIONS)})")
    precision = args.precision
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise cli.UserError(f"unknown device {args.device!r} (cpu, cuda, cuda:N, mps)") from None
    if precision != "fp32" and not runtime.native_precision_support(device, precision):
        cli.log.warning(f"{precision} is not native on this {device.type}: training in fp32")
        precision = "fp32"
    settings = loop.Settings(
        run_dir=args.run_dir, data=args.data, start=args.start, config=model_config(args.config), recipe=args.recipe,
        loss_weights=dict(args.loss_weight), vgg_file=args.vgg_file, learning_rate=args.learning_rate,
        decay_steps=args.decay_steps, decay_rate=args.decay_rate, staircase=not args.no_staircase,
        steps=args.steps, batch_size=args.batch_size, crop_size=args.crop, augmentations=augmentations,
        seed=args.seed, val_fraction=args.val_fraction, frame_gap=args.frame_gap,
        scene_threshold=args.scene_threshold, dedup_threshold=args.dedup_threshold, val_every=args.val_every,
        val_count=args.val_count, val_crop=args.val_crop, checkpoint_every=args.checkpoint_every,
        workers=args.workers, precision=precision, device=args.device, export=not args.no_export,
        world_size=world_size, progress=not args.no_progress)
    started = time.perf_counter()
    try:
        trainer = loop.Run(settings, rank, world_size)
    except data.DataError as error:
        raise cli.UserError(str(error)) from None
    if rank == 0:
        sources = "; ".join(f"{path}: {layout}, {n_train} training / {n_val} validation triplets"
                            for path, layout, n_train, n_val in trainer.manifest["sources"])
        print(f"Data: {sources}")
        origin = f"resumed at step {trainer.first_step}" if trainer.resumed else (
            f"from {settings.start}" if settings.start else "from scratch")
        weights = ", ".join(f"{name} {schedule.values}" + (f" at {schedule.boundaries}" if len(
            set(schedule.values)) > 1 else "") for name, schedule in trainer.schedules.items())
        print(f"Model {trainer.model.config} {origin}; recipe {settings.recipe}: {weights}")
    result = trainer.train()
    if rank == 0:
        if result["last"]:
            print(f"Step {result['last']['step'] + 1}: loss {result['last']['loss']:.6g} "
                  f"({', '.join(f'{k} {v:.4g}' for k, v in result['last']['parts'].items())})")
        for label in ("first_validation", "final_validation"):
            if result[label]:
                v = result[label]
                print(f"Validation {'before' if label == 'first_validation' else 'after'}: L1 {v['l1']:.5f}, "
                      f"PSNR {v['psnr']:.2f} dB ({v['triplets']} triplets)")
        if result["exported"]:
            print(f"Wrote {result['exported']} (TorchScript, fp32) in {time.perf_counter() - started:.1f} s")
    if world_size > 1:
        torch.distributed.destroy_process_group()
    return 0


def main(argv=None) -> int:
    return cli.run_reporting_errors(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
