"""A random-weight micro-sam checkpoint (``model_state`` + ``decoder_state``) and test images.

Imported both by the tests (our venv) and by ``scripts/record_microsam_reference.py`` (run
with micro-sam's venv), so it needs only numpy, torch and mobile_sam: no napari_promptseg.
Same torch version in both venvs → the same seeded weights; :func:`state_hash` detects a
mismatch instead of letting a test compare different models.

The random decoder is scaled so that its sigmoid maps vary around micro-sam's 0.5
thresholds: the seeded watershed then finds a few dozen objects, not none or one.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # tests/, for familykit
from familykit import mobilesam_reference

SEED = 20
SIZE = (300, 517)  # odd, not square
PLANES = 3
# tiled runs on SIZE: 2 x 3 inner tiles, the last row and column cut by the border
TILE_SHAPE = (160, 224)
HALO = (48, 40)
# APG with mask_threshold="auto": micro-sam's local Otsu unfolds 961 values per logit pixel
# (about 3 GB for 2 masks); its default batch of 32 would need about 24 GB
AUTO_BATCH = 2
FEATURES = [512, 256, 128, 64]
EMBED_DIM = 256


def _conv_block(prefix: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}.block.1.weight": (cout, cin, 3, 3),
        f"{prefix}.block.1.bias": (cout,),
        f"{prefix}.block.4.weight": (cout, cout, 3, 3),
        f"{prefix}.block.4.bias": (cout,),
    }


def _upsampler(prefix: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.conv.weight": (cout, cin, 1, 1), f"{prefix}.conv.bias": (cout,)}


def _deconv_block(prefix: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    shapes = _upsampler(f"{prefix}.block.0", cin, cout)
    shapes[f"{prefix}.block.1.block.weight"] = (cout, cout, 3, 3)
    shapes[f"{prefix}.block.1.block.bias"] = (cout,)
    for name in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{prefix}.block.2.{name}"] = (cout,)
    shapes[f"{prefix}.block.2.num_batches_tracked"] = ()
    return shapes


def decoder_shapes() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of torch_em's UNETR decoder as micro-sam saves it (no skips, bilinear)."""
    f = FEATURES
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(3):
        shapes.update(_conv_block(f"decoder.blocks.{i}", f[i], f[i + 1]))
        shapes.update(_upsampler(f"decoder.samplers.{i}", f[i], f[i + 1]))
    shapes.update(_deconv_block("deconv1", EMBED_DIM, f[0]))
    shapes.update(_deconv_block("deconv2", f[0], f[1]))
    shapes.update(_deconv_block("deconv3", f[1], f[2]))
    shapes.update(_deconv_block("deconv4", f[2], f[3]))
    shapes.update(_conv_block("base", EMBED_DIM, f[0]))
    shapes["out_conv.weight"] = (3, f[3], 1, 1)
    shapes["out_conv.bias"] = (3,)
    shapes.update(_upsampler("deconv_out", f[3], f[3]))
    shapes.update(_conv_block("decoder_head", 2 * f[3], f[3]))
    return shapes


def random_decoder_state(seed: int = SEED, out_scale: float = 3.0) -> dict[str, torch.Tensor]:
    """Seeded He-scaled weights; the output layer scaled by ``out_scale`` so the maps vary."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in decoder_shapes().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=generator)
        elif key.endswith("running_mean"):
            state[key] = 0.1 * torch.randn(shape, generator=generator)
        elif ".block.2." in key and key.endswith("weight"):  # BatchNorm scale
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif len(shape) == 1:
            state[key] = 0.05 * torch.randn(shape, generator=generator)
        else:
            fan_in = int(np.prod(shape[1:]))
            state[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
    state["out_conv.weight"] = state["out_conv.weight"] * out_scale
    state["out_conv.bias"] = torch.tensor([0.3, -0.2, -0.2])  # more foreground, some seeds
    return state


def make_checkpoint(path: Path, seed: int = SEED) -> str:
    """Write micro-sam's format for a random vit_t at ``path``; return :func:`state_hash`."""
    sam_state = mobilesam_reference(seed).state_dict()
    for key in sam_state:
        if key.endswith("attention_biases"):
            # micro-sam 1.8.14 loads vit_t weights into a TinyViT already in eval mode, which
            # keeps the attention biases cached from the builder's zeros (its embeddings
            # ignore a checkpoint's biases): zero biases make both sides compute the same
            sam_state[key] = torch.zeros_like(sam_state[key])
    checkpoint = {
        "model_state": {f"sam.{k}": v for k, v in sam_state.items()},
        "decoder_state": random_decoder_state(seed),
    }
    torch.save(checkpoint, path)
    return state_hash(checkpoint)


def state_hash(checkpoint: dict) -> str:
    """sha256 over every (key, dtype, shape, bytes) of both state dicts, in key order."""
    digest = hashlib.sha256()
    for part in ("model_state", "decoder_state"):
        for key in sorted(checkpoint[part]):
            tensor = checkpoint[part][key].detach().cpu().contiguous()
            digest.update(f"{part}/{key}/{tensor.dtype}/{tuple(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def nuclei_image(size: tuple[int, int] = SIZE, seed: int = 0, n: int = 40) -> np.ndarray:
    """(H, W) uint8 bright blobs on a dark, noisy background, spanning 0..255."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: size[0], : size[1]]
    image = rng.normal(30, 8, size)
    for _ in range(n):
        r, c = rng.uniform(0, size[0]), rng.uniform(0, size[1])
        radius = rng.uniform(6, 16)
        image += 150 * np.exp(-((((rows - r) ** 2 + (cols - c) ** 2) / (2 * radius**2)) ** 2))
    image = (image - image.min()) / (image.max() - image.min()) * 255
    return np.round(image).astype(np.uint8)


def nuclei_stack(planes: int = PLANES, size: tuple[int, int] = SIZE) -> np.ndarray:
    """(Z, H, W) uint8: :func:`nuclei_image`'s blobs drifting slowly, each plane spanning
    0..255 (plane 0 is the 2D test image: its decoder maps are reused)."""
    base = nuclei_image(size)
    return np.stack([np.roll(base, 2 * z, axis=1) for z in range(planes)])


def tiled_nuclei_image(size: tuple[int, int] = SIZE) -> np.ndarray:
    """:func:`nuclei_image` with a 0 and a 255 pixel in every inner tile of ``TILE_SHAPE``.

    micro-sam stretches each tile's contrast to the tile's own min..max (``_to_image``);
    we keep the plane's contrast, as napari shows it. On this image every tile already
    spans 0..255, so both give the same pixels and the tiling itself is what is compared.
    """
    image = nuclei_image(size)
    for row in range(0, size[0], TILE_SHAPE[0]):
        for col in range(0, size[1], TILE_SHAPE[1]):
            image[row + 5, col + 5], image[row + 6, col + 5] = 0, 255
    return image


def otsu_logits() -> list[torch.Tensor]:
    """Low-resolution mask logits for micro-sam's local Otsu ("auto" threshold): a batch of
    (4, 1, 256, 256) (a blob with noise, one under 0 everywhere, a constant, two blobs on a
    ramp) and an odd (1, 1, 37, 90), all seeded."""
    generator = torch.Generator().manual_seed(SEED)
    rows, cols = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    blob = 8 - ((rows - 100) ** 2 + (cols - 140) ** 2).sqrt() / 6
    other = 5 - ((rows - 30) ** 2 + (cols - 220) ** 2).sqrt() / 3
    noise = torch.randn((256, 256), generator=generator)
    batch = torch.stack(
        [
            blob + noise,
            blob - 40 + 0.5 * noise,
            torch.full((256, 256), 2.5),
            torch.maximum(blob, other) + cols / 64 + 0.2 * noise,
        ]
    )[:, None]
    return [batch, 3 * torch.randn((1, 1, 37, 90), generator=generator)]


def to_rgb(image: np.ndarray) -> np.ndarray:
    """micro-sam's ``_to_image`` for an (H, W) uint8 image spanning 0..255: gray → RGB."""
    return np.repeat(image[..., None], 3, axis=-1)
