"""micro-sam's instance decoder: the UNETR head that runs on a cached SAM embedding.

micro-sam (``micro_sam.instance_segmentation.get_decoder``) builds torch_em's ``UNETR``
(``backbone="sam"``, ``use_skip_connection=False``, ``resize_input=True``, sigmoid output,
3 channels) around SAM's image encoder and keeps only the decoder part
(``DecoderAdapter``): it starts from the encoder output, so the encoder never runs twice.
This module is that decoder part, written out with the same module names so that
micro-sam's ``decoder_state`` loads into it strictly, and the same operations in the same
order so that its outputs equal micro-sam's bit for bit (torch_em 0.10.9,
``torch_em/model/unetr.py`` and ``unet.py``, MIT licence). Depending on torch_em itself would
pull some 30 packages (tensorboard, kornia, bioimageio, numba...) for these 150 lines.

Shapes: the embedding is (1, C, 64, 64) with C = 256; the decoder output is
(1, 3, 1024, 1024) before it is cropped to the resized image and resized back to
(H, W): channel 0 the foreground probability, 1 the distance to the object centre,
2 the distance to the object boundary (both distances normalised to [0, 1]).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...errors import ModelError

ENCODER_SIZE = 1024  # SAM's (and MobileSAM's) encoder input side
OUT_CHANNELS = 3  # foreground, centre distances, boundary distances


class _ConvBlock2d(nn.Module):
    """torch_em ``ConvBlock2d``: (InstanceNorm, 3x3 conv, ReLU) twice."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.InstanceNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.InstanceNorm2d(out_channels),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class _Upsampler2d(nn.Module):
    """torch_em ``Upsampler2d``: bilinear x2, then a 1x1 conv."""

    def __init__(self, scale_factor: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=self.scale_factor, mode="bilinear", align_corners=False)
        return self.conv(x)


class _TransposeUpsampler2d(nn.Module):
    """torch_em ``SingleDeconv2DBlock``: a 2x2 stride-2 transposed conv."""

    def __init__(self, scale_factor: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class _SingleConv(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.block = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class _BatchNorm(nn.BatchNorm2d):
    """BatchNorm that normalises with the batch's own statistics, as micro-sam runs it.

    micro-sam 1.8.14 never switches its decoder to eval mode (``get_unetr`` /
    ``DecoderAdapter``), so its BatchNorm layers use the statistics of the embedding at hand,
    not the stored running ones. Matching micro-sam means doing the same (without updating
    the stored statistics); :attr:`use_batch_statistics` False gives eval-mode behaviour.
    """

    use_batch_statistics = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.use_batch_statistics:
            return super().forward(x)
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class _DeconvBlock(nn.Module):
    """torch_em ``Deconv2DBlock``: upsample x2, 3x3 conv, BatchNorm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int, transpose: bool) -> None:
        super().__init__()
        sampler = _TransposeUpsampler2d if transpose else _Upsampler2d
        self.block = nn.Sequential(
            sampler(2, in_channels, out_channels),
            _SingleConv(out_channels, out_channels),
            _BatchNorm(out_channels),
            nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class _Decoder(nn.Module):
    """torch_em ``Decoder``: per level, upsample, concatenate the skip, conv block."""

    def __init__(self, features: list[int], transpose: bool) -> None:
        super().__init__()
        sampler = _TransposeUpsampler2d if transpose else _Upsampler2d
        self.blocks = nn.ModuleList([_ConvBlock2d(inc, outc) for inc, outc in pairwise(features)])
        self.samplers = nn.ModuleList([sampler(2, inc, outc) for inc, outc in pairwise(features)])

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        for block, sampler, skip in zip(self.blocks, self.samplers, skips, strict=True):
            x = sampler(x)
            x = block(torch.cat([x, _center_crop(skip, x.shape)], dim=1))
        return x


def _center_crop(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    diff = [(have - want) // 2 for have, want in zip(x.shape[1:], shape[1:], strict=True)]
    crop = (slice(None), *(slice(d, d + s) for d, s in zip(diff, shape[1:], strict=True)))
    return x[crop]


class InstanceDecoder(nn.Module):
    """The UNETR decoder of a micro-sam checkpoint, applied to SAM embeddings.

    Parameters
    ----------
    embed_dim : int
        Channels of the embedding (256 for SAM and MobileSAM).
    initial_features : int
        Features of the finest level (torch_em's default 64).
    transpose : bool
        Upsample with transposed convolutions (some micro-sam decoders) instead of
        bilinear interpolation plus a 1x1 conv (the default).
    """

    def __init__(
        self, embed_dim: int = 256, initial_features: int = 64, transpose: bool = False
    ) -> None:
        super().__init__()
        features = [initial_features * 2**i for i in range(4)][::-1]  # 512 256 128 64
        self.embed_dim = embed_dim
        self.decoder = _Decoder(features, transpose)
        self.deconv1 = _DeconvBlock(embed_dim, features[0], transpose)
        self.deconv2 = _DeconvBlock(features[0], features[1], transpose)
        self.deconv3 = _DeconvBlock(features[1], features[2], transpose)
        self.deconv4 = _DeconvBlock(features[2], features[3], transpose)
        self.base = _ConvBlock2d(embed_dim, features[0])
        self.out_conv = nn.Conv2d(features[-1], OUT_CHANNELS, 1)
        sampler = _TransposeUpsampler2d if transpose else _Upsampler2d
        self.deconv_out = sampler(2, features[-1], features[-1])
        self.decoder_head = _ConvBlock2d(2 * features[-1], features[-1])
        self.final_activation = nn.Sigmoid()

    def forward_low_res(self, z12: torch.Tensor) -> torch.Tensor:
        """(B, C, 64, 64) embeddings → (B, 3, 1024, 1024) sigmoid maps (``_forward_impl``)."""
        z9 = self.deconv1(z12)
        z6 = self.deconv2(z9)
        z3 = self.deconv3(z6)
        z0 = self.deconv4(z3)
        x = self.base(z12)
        x = self.decoder(x, [z9, z6, z3])
        x = self.deconv_out(x)
        x = torch.cat([x, z0], dim=1)
        x = self.decoder_head(x)
        x = self.out_conv(x)
        return self.final_activation(x)

    def forward(
        self,
        features: torch.Tensor,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
    ) -> torch.Tensor:
        """(1, C, 64, 64) → (1, 3, H, W): maps at the size of the original image."""
        return postprocess(self.forward_low_res(features), input_size, original_size)

    @torch.no_grad()
    def predict(
        self,
        features: torch.Tensor,
        input_size: tuple[int, int],
        original_size: tuple[int, int],
    ) -> np.ndarray:
        """(1, C, 64, 64) embedding → (3, H, W) float32 numpy maps (as micro-sam's
        ``InstanceSegmentationWithDecoder.initialize``)."""
        param = next(self.parameters())
        features = features.to(device=param.device, dtype=param.dtype)
        out = self(features, tuple(input_size), tuple(original_size))
        return out.cpu().numpy().squeeze(0)


def postprocess(
    maps: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]
) -> torch.Tensor:
    """torch_em ``UNETRBase.postprocess_masks`` for 2D: (B, 3, h', w') → (B, 3, H, W)."""
    maps = F.interpolate(maps, (ENCODER_SIZE, ENCODER_SIZE), mode="bilinear", align_corners=False)
    maps = maps[..., : input_size[0], : input_size[1]]
    return F.interpolate(maps, tuple(original_size), mode="bilinear", align_corners=False)


def build_decoder(
    state: Mapping[str, torch.Tensor],
    *,
    device: str | torch.device = "cpu",
    label: str = "decoder",
) -> InstanceDecoder:
    """An :class:`InstanceDecoder` holding ``state`` (micro-sam's ``decoder_state``).

    The layout (transposed-conv upsampling or not, feature widths, embedding channels) is
    read from the weights, as micro-sam's ``get_unetr`` does.

    Raises
    ------
    ModelError
        The state is not a UNETR decoder of this layout (missing, unknown or misshaped
        weights), naming what differs.
    """
    keys = list(state)
    transpose = any(".block." in k for k in keys if k.startswith("decoder.samplers"))
    try:
        embed_dim = int(state["base.block.1.weight"].shape[1])
        initial = int(state["out_conv.weight"].shape[1])
    except KeyError as exc:
        raise ModelError(
            f"{label} is not a micro-sam instance decoder (no weight {exc.args[0]!r})"
        ) from None
    decoder = InstanceDecoder(embed_dim, initial, transpose)
    expected = decoder.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or misshaped:
        example = (misshaped or missing or unexpected)[0]
        raise ModelError(
            f"{label} does not fit micro-sam's UNETR decoder ({len(missing)} weights missing, "
            f"{len(unexpected)} unknown, {len(misshaped)} of another shape, e.g. {example!r})"
        )
    decoder.load_state_dict({k: state[k] for k in expected}, strict=True)
    return decoder.float().to(device).eval()
