"""Training FILM in PyTorch: the original's losses, optimizer, schedules, data and loop.

Conventions, as in the network (``util``): images are (B, 3, H, W) float32 RGB,
nominally in [0, 1] (losses accept values outside it, as the original does);
the reference files of the ORIGINAL code are NHWC and are transposed at the
boundary. Modules:

- ``matlab``: a reader for MATLAB v5 ``.mat`` files (no SciPy needed).
- ``vgg19``: VGG-19 features from MatConvNet's ``imagenet-vgg-verydeep-19.mat``.
- ``losses``: l1, l2, the VGG perceptual loss and the style (Gram) loss.
- ``optim``: Adam exactly as TF Keras computes it, and the original's schedules.
- ``augment``, ``data``: triplet sources, random crops and the original's augmentations.
- ``loop``: the training loop with checkpoints, resuming, logs and export.
"""
