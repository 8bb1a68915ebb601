"""The original FILM's benchmark evaluation (``eval/eval_cli.py``), from the datasets' own folders.

- ``datasets``: each benchmark's folder layout, its triplets, and the crops and resizes it applies.
- ``metrics``: PSNR, SSIM, L1, L2 in torch, as the original computes them (also usable as losses).
- ``runner``: settings (precision, reuse, tiling, padding) run side by side into a resumable results.csv.

``evaluate.py`` at the repository root is the command line.
"""
