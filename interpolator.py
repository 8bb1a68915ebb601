"""The FILM interpolator: two frames and a time in, the frame between out.

Pipeline (Reda et al., "FILM: Frame Interpolation for Large Motion", ECCV 2022):
image pyramid → cascaded feature pyramid (``feature_extractor``) → residual
flow pyramid in both directions (``pyramid_flow_estimator``) → backward warp of
both frames' images and features to time ``dt`` → fusion (``fusion``) → RGB.

Conventions (NCHW, RGB in [0, 1], pyramids finest first, flow channel 0 = x)
are stated in ``util``. ``dt`` is (B, 1): 0 is ``x0``, 1 is ``x1``. The
original TensorFlow model ignores its time input and always renders t = 0.5;
this port honours ``dt`` (with dt = 0.5 it computes what the original does).

Besides ``forward`` the scripted model exports the pieces of the pipeline so
that callers can reuse work exactly: ``encode`` a frame once however many
pairs it belongs to, ``estimate_flows`` once per pair however many times are
rendered, then ``synthesize`` each frame. ``debug_forward`` returns every
intermediate output that the original's SavedModel returns, for testing.
"""
from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor, nn

import util
from feature_extractor import FeatureExtractor
from fusion import Fusion
from pyramid_flow_estimator import PyramidFlowEstimator, flow_pyramid_synthesis

STYLE_CONFIG = dict(pyramid_levels=7, fusion_pyramid_levels=5, specialized_levels=3, sub_levels=4,
                    filters=64, flow_convs=(3, 3, 3, 3), flow_filters=(32, 64, 128, 256))


class Interpolator(nn.Module):
    def __init__(self, pyramid_levels: int = 7, fusion_pyramid_levels: int = 5,
                 specialized_levels: int = 3, sub_levels: int = 4, filters: int = 64,
                 flow_convs: Sequence[int] = (3, 3, 3, 3),
                 flow_filters: Sequence[int] = (32, 64, 128, 256)):
        super().__init__()
        flow_convs, flow_filters = tuple(int(c) for c in flow_convs), tuple(int(f) for f in flow_filters)
        if not 1 <= sub_levels <= pyramid_levels:
            raise ValueError(f"sub_levels must be in [1, pyramid_levels], got {sub_levels}")
        if not 1 <= specialized_levels < pyramid_levels:
            raise ValueError(f"specialized_levels must be in [1, pyramid_levels), got {specialized_levels}")
        if not 2 <= fusion_pyramid_levels <= pyramid_levels:
            raise ValueError(f"fusion_pyramid_levels must be in [2, pyramid_levels], got {fusion_pyramid_levels}")
        if filters < 1 or min(flow_filters, default=0) < 2 or min(flow_convs, default=0) < 1:
            raise ValueError("filters must be >= 1, flow_filters >= 2 and flow_convs >= 1")
        self.config = dict(pyramid_levels=pyramid_levels, fusion_pyramid_levels=fusion_pyramid_levels,
                           specialized_levels=specialized_levels, sub_levels=sub_levels, filters=filters,
                           flow_convs=flow_convs, flow_filters=flow_filters)
        self.pyramid_levels = pyramid_levels
        self.fusion_pyramid_levels = fusion_pyramid_levels
        # pyramid_levels is the one setting that no weight shape reveals: keep it
        # in the state dict so that a saved state dict rebuilds the same network.
        self.register_buffer("pyramid_levels_", torch.tensor(pyramid_levels, dtype=torch.int64))

        feature_channels = FeatureExtractor.channels(filters, sub_levels, pyramid_levels)
        self.feature_extractor = FeatureExtractor(filters, sub_levels)
        self.flow_estimator = PyramidFlowEstimator(feature_channels, flow_convs, flow_filters, specialized_levels)
        # Per level: both warped (image + features), then both flows.
        aligned_channels = [2 * (3 + c) + 4 for c in feature_channels[:fusion_pyramid_levels]]
        self.fusion = Fusion(aligned_channels, filters, specialized_levels)
        # Conv weights in the activations' layout (channels_last): otherwise
        # every CPU convolution first copies its weight into that layout, about
        # 0.4 GB of copies per forward pass whatever the frame size. Loading a
        # state dict copies values into these tensors and keeps the layout.
        self.to(memory_format=torch.channels_last)

    def _check_inputs(self, x0: Tensor, x1: Tensor):
        if x0.dim() != 4 or x0.shape[1] != 3 or x0.shape != x1.shape:
            raise ValueError(f"x0 and x1 must both be (B, 3, H, W) of one shape, got "
                             f"{list(x0.shape)} and {list(x1.shape)}")
        smallest = 1 << (self.pyramid_levels - 1)
        if x0.shape[2] < smallest or x0.shape[3] < smallest:
            raise ValueError(f"frames must be at least {smallest}x{smallest} pixels for "
                             f"{self.pyramid_levels} pyramid levels, got {x0.shape[2]}x{x0.shape[3]}: pad them")

    def _check_pair(self, name: str, pyramid0: List[Tensor], pyramid1: List[Tensor]):
        """Both frames' pyramids of one pair must come from frames of one size."""
        if len(pyramid0) != len(pyramid1) or pyramid0[0].shape != pyramid1[0].shape:
            raise ValueError(f"{name} of the two frames differ: {len(pyramid0)} levels from "
                             f"{list(pyramid0[0].shape)} and {len(pyramid1)} levels from "
                             f"{list(pyramid1[0].shape)}; encode frames of one size")

    @torch.jit.export
    def encode(self, image: Tensor) -> Tuple[List[Tensor], List[Tensor]]:
        """(image pyramid, feature pyramid) of one frame (B, 3, H, W)."""
        image_pyramid = util.build_image_pyramid(image, self.pyramid_levels)
        return image_pyramid, self.feature_extractor(image_pyramid)

    def _residual_flows(self, features0: List[Tensor], features1: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        return self.flow_estimator(features0, features1), self.flow_estimator(features1, features0)

    @torch.jit.export
    def estimate_flows(self, features0: List[Tensor], features1: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """(forward, backward) flow pyramids over the fusion levels.

        The forward flow warps frame 1 onto frame 0's grid; the backward flow
        warps frame 0 onto frame 1's. Scaled by ``1 - dt`` and ``dt`` they warp
        both frames to time ``dt``.
        """
        self._check_pair("feature pyramids", features0, features1)
        forward_residuals, backward_residuals = self._residual_flows(features0, features1)
        levels = self.fusion_pyramid_levels
        return (flow_pyramid_synthesis(forward_residuals)[:levels],
                flow_pyramid_synthesis(backward_residuals)[:levels])

    def _warp_to_time(self, images0: List[Tensor], features0: List[Tensor], images1: List[Tensor],
                      features1: List[Tensor], forward_flows: List[Tensor], backward_flows: List[Tensor],
                      dt: Tensor) -> List[List[Tensor]]:
        """Fusion input per level, as the parts of the original's concatenation
        [warped image 0, warped features 0, warped image 1, warped features 1,
        flow 0, flow 1], both frames warped to time ``dt``.

        Image and features are warped separately by one sampler, which gives
        what warping their concatenation gives without copying them into one.
        """
        time = dt.float().reshape(-1, 1, 1, 1)  # flows are float32 in any precision
        aligned: List[List[Tensor]] = []
        for i in range(self.fusion_pyramid_levels):
            backward_flow = backward_flows[i] * time
            forward_flow = forward_flows[i] * (1.0 - time)
            sampler0 = util.warp_sampler(backward_flow)
            sampler1 = util.warp_sampler(forward_flow)
            aligned.append([util.warp_with(images0[i], sampler0), util.warp_with(features0[i], sampler0),
                            util.warp_with(images1[i], sampler1), util.warp_with(features1[i], sampler1),
                            backward_flow, forward_flow])
        return aligned

    @torch.jit.export
    def synthesize(self, images0: List[Tensor], features0: List[Tensor], images1: List[Tensor],
                   features1: List[Tensor], forward_flows: List[Tensor], backward_flows: List[Tensor],
                   dt: Tensor) -> Tensor:
        """The frame at ``dt`` from both frames' pyramids and the pair's flows."""
        self._check_pair("image pyramids", images0, images1)
        self._check_pair("feature pyramids", features0, features1)
        return self.fusion(self._warp_to_time(images0, features0, images1, features1, forward_flows,
                                              backward_flows, dt))

    def forward(self, x0: Tensor, x1: Tensor, dt: Tensor) -> Tensor:
        """x0, x1: (B, 3, H, W) RGB in [0, 1]; dt: (B, 1) → the frame at dt, (B, 3, H, W)."""
        self._check_inputs(x0, x1)
        images0, features0 = self.encode(x0)
        images1, features1 = self.encode(x1)
        forward_flows, backward_flows = self.estimate_flows(features0, features1)
        return self.synthesize(images0, features0, images1, features1, forward_flows, backward_flows, dt)

    @torch.jit.export
    def debug_forward(self, x0: Tensor, x1: Tensor, dt: Tensor) -> Dict[str, Tensor]:
        """Every output of the original SavedModel, under its names (NCHW here)."""
        self._check_inputs(x0, x1)
        images0, features0 = self.encode(x0)
        images1, features1 = self.encode(x1)
        forward_residuals, backward_residuals = self._residual_flows(features0, features1)
        forward_flows = flow_pyramid_synthesis(forward_residuals)[:self.fusion_pyramid_levels]
        backward_flows = flow_pyramid_synthesis(backward_residuals)[:self.fusion_pyramid_levels]
        aligned = self._warp_to_time(images0, features0, images1, features1, forward_flows, backward_flows, dt)
        outputs: Dict[str, Tensor] = {
            "x0_warped": aligned[0][0].contiguous(),
            "x1_warped": aligned[0][2].contiguous(),
        }
        outputs["image"] = self.fusion(aligned)  # consumes aligned
        for name, pyramid in (("forward_residual_flow_pyramid", forward_residuals),
                              ("backward_residual_flow_pyramid", backward_residuals),
                              ("forward_flow_pyramid", forward_flows),
                              ("backward_flow_pyramid", backward_flows)):
            for i, level in enumerate(pyramid):
                outputs[name + "/" + str(i)] = level
        return outputs
