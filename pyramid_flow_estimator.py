"""Residual pyramid flow estimator (FILM, section 3.2).

Starting at the coarsest level, a small CNN predicts a flow from the features
of image A and the features of image B warped by the flow so far; each finer
level upsamples the flow and adds a predicted residual. The finest
``specialized_levels`` levels have predictors of their own; all coarser levels
share one ("flow_predictor_shared"), which is what lets the released models
run on more pyramid levels than they were trained with.

Conventions (NCHW, pyramids finest first, flow channel 0 = x) are those of
``util``. Parameter ``predictors.{i}.convs.{j}`` is the original
``flow_predictor_{i}/conv_{j}`` and ``shared.convs.{j}`` is
``flow_predictor_shared/conv_{j}``.
"""
from typing import List, Sequence

from torch import Tensor, nn

import util


class FlowEstimator(nn.Module):
    """``num_convs`` 3×3 convs, then a 1×1 to half the width, then a 1×1 to 2 channels."""

    def __init__(self, in_channels: int, num_convs: int, num_filters: int):
        super().__init__()
        convs = []
        channels = in_channels
        for _ in range(num_convs):
            convs.append(util.conv3x3(channels, num_filters))
            channels = num_filters
        convs.append(util.conv1x1(num_filters, num_filters // 2))
        convs.append(util.conv1x1(num_filters // 2, 2))
        self.activated = num_convs + 1  # every conv but the last is followed by leaky ReLU
        self.convs = nn.ModuleList(convs)

    def forward(self, features_a: Tensor, features_b: Tensor) -> Tensor:
        net = features_a
        for j, conv in enumerate(self.convs):
            if j == 0:
                net = util.conv_pair_leaky_relu(features_a, features_b, conv.weight, conv.bias)
            elif j < self.activated:
                net = util.conv_leaky_relu(net, conv.weight, conv.bias)
            else:
                net = conv(net)
        return net


class PyramidFlowEstimator(nn.Module):
    def __init__(self, feature_channels: Sequence[int], flow_convs: Sequence[int],
                 flow_filters: Sequence[int], specialized_levels: int):
        """``feature_channels[i]``: channels of feature pyramid level ``i``.

        ``flow_convs``/``flow_filters`` have ``specialized_levels + 1`` entries:
        one per specialised predictor, the last for the shared one.
        """
        super().__init__()
        if not (len(flow_convs) == len(flow_filters) == specialized_levels + 1):
            raise ValueError(f"flow_convs and flow_filters need specialized_levels + 1 = "
                             f"{specialized_levels + 1} entries, got {list(flow_convs)} and {list(flow_filters)}")
        if len(feature_channels) <= specialized_levels:
            raise ValueError("the pyramid needs more levels than specialized_levels")
        self.predictors = nn.ModuleList(
            FlowEstimator(2 * feature_channels[i], flow_convs[i], flow_filters[i])
            for i in range(specialized_levels))
        self.shared = FlowEstimator(2 * feature_channels[specialized_levels], flow_convs[-1], flow_filters[-1])

    def _predict(self, level: int, features_a: Tensor, features_b: Tensor) -> Tensor:
        # TorchScript cannot index a ModuleList with a variable, hence the scan.
        for i, predictor in enumerate(self.predictors):
            if i == level:
                return predictor(features_a, features_b)
        return self.shared(features_a, features_b)

    def forward(self, feature_pyramid_a: List[Tensor], feature_pyramid_b: List[Tensor]) -> List[Tensor]:
        """Residual flow pyramid (finest first) that warps B onto A."""
        levels = len(feature_pyramid_a)
        # Flows are accumulated in float32 whatever the convolutions' dtype:
        # positions of large motions need the mantissa (see util.warp).
        flow = self._predict(levels - 1, feature_pyramid_a[-1], feature_pyramid_b[-1]).float()
        residuals: List[Tensor] = [flow]
        for i in range(levels - 2, -1, -1):
            features_a = feature_pyramid_a[i]
            flow = util.upsample_flow(flow, features_a.shape[-2], features_a.shape[-1])
            warped_b = util.warp(feature_pyramid_b[i], flow)
            residual = self._predict(i, features_a, warped_b)
            residuals.append(residual)
            flow = flow + residual
        residuals.reverse()
        return residuals


def flow_pyramid_synthesis(residual_pyramid: List[Tensor]) -> List[Tensor]:
    """Accumulates a residual flow pyramid into absolute flows (float32), finest first."""
    flow = residual_pyramid[-1].float()
    flows: List[Tensor] = [flow]
    for i in range(len(residual_pyramid) - 2, -1, -1):
        residual = residual_pyramid[i]
        flow = util.upsample_flow(flow, residual.shape[-2], residual.shape[-1]) + residual
        flows.append(flow)
    flows.reverse()
    return flows
