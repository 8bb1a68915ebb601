"""Tests of media.sources' helpers; the sources themselves are tested on real files in test_inference_video,
test_codecs and test_video_jobs (through the command line and ``frames_from``)."""
import pathlib
import sys
from fractions import Fraction

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from media import sources  # noqa: E402


def test_natural_sort():
    names = ["frame10.png", "frame2.png", "Frame1.png", "frame2b.png", "a.png", "frame100.png"]
    assert sorted(names, key=sources.natural_sort_key) == \
        ["a.png", "Frame1.png", "frame2.png", "frame2b.png", "frame10.png", "frame100.png"]


@pytest.mark.parametrize("rotation, turns", [(0, 0), (90, 1), (-90, -1), (180, 2), (-180, 2), (270, -1), (89, 1)])
def test_rotate_upright(rotation, turns):
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(sources.rotate_upright(pixels, rotation), np.rot90(pixels, k=turns))


def test_tidy_rate():
    assert sources.tidy_rate(Fraction(30000, 1001)) == Fraction(30000, 1001)
    assert sources.tidy_rate(Fraction(1350000, 45043)) == Fraction(1350000, 45043).limit_denominator(1001)
