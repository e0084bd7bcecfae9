"""Masks, predicted IoU and stability from prompts and a cached embedding: the hot path.

Results equal ``SamPredictor.predict`` bit for bit: the same modules run the same float
operations in the same order. What we save is work that depends on the image alone and
that upstream repeats on every click:

* the dense positional encoding of the 64x64 grid (once per model);
* without a mask prompt, the image tokens entering the decoder (embedding + "no mask"
  embedding) and the first transformer block's key/value projections of them for the
  token-to-image attention and query projection for the image-to-token attention
  (once per image, :meth:`SamDecoder.prepare`);
* the part of the 1024x1024 upscaled logits that upstream crops away as padding.

With a mask prompt (refinement) the image tokens depend on the prompt, so that decode runs
upstream's decoder as it is.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from segment_anything.modeling.transformer import Attention
from segment_anything.utils.amg import calculate_stability_score
from segment_anything.utils.transforms import ResizeLongestSide
from torch.nn import functional as F

from ..models.architectures import SamModel
from .embedding import EmbeddingKey, ImageEmbedding
from .prompts import Prompts, SamPrompts, is_ambiguous, to_sam_prompts

STABILITY_OFFSET = 1.0  # as SamAutomaticMaskGenerator's stability_score_offset


@dataclass(eq=False)
class DecodeResult:
    """Candidate masks for one prompt set.

    Attributes
    ----------
    masks
        (K, H, W) bool at the image's original size; K = 3 with multimask output, else 1.
    iou
        (K,) float32: SAM's predicted IoU of each mask (its confidence).
    stability
        (K,) float32: IoU between the mask thresholded at +1 and at -1 logits (how much the
        mask changes with the threshold; 1.0 = crisp).
    low_res_logits
        (K, 256, 256) float32 logits, usable as ``Prompts.mask_input`` to refine.
    best
        Index of the mask with the highest predicted IoU.
    key
        The embedding key this result was computed for (image + model).
    """

    masks: np.ndarray
    iou: np.ndarray
    stability: np.ndarray
    low_res_logits: np.ndarray
    best: int
    key: EmbeddingKey | None = None

    @property
    def mask(self) -> np.ndarray:
        """The best mask, (H, W) bool."""
        return self.masks[self.best]


@dataclass(eq=False)
class PreparedImage:
    """Image-only decoder work, computed once per embedding (no mask prompt)."""

    keys: torch.Tensor  # (1, N, C) image tokens: embedding + no-mask embedding
    key_pe: torch.Tensor  # (1, N, C) positional encoding of the grid
    token_to_image_k: torch.Tensor  # first block, heads separated
    token_to_image_v: torch.Tensor
    image_to_token_q: torch.Tensor


class SamDecoder:
    """Decodes masks from an :class:`ImageEmbedding` with one SAM model.

    Thread-safe: the napari plugin decodes in a worker while another embeds.

    Parameters
    ----------
    sam
        A segment_anything ``Sam`` in eval mode.
    prepared_slots
        How many images keep their prepared decoder state, least recently used dropped
        first. Each slot holds about 3.5x an embedding's size: ~14 MiB for vit_b, vit_l
        and vit_h alike (the decoder is 256 wide in all three), plus the embedding itself
        (4 MiB) while the slot keeps it alive. Segment everything with crop layers
        prepares every crop (1 + 4 crops for one layer), so fewer than 8 slots would drop
        the shown image's state and make its next click pay for it again.
    """

    def __init__(self, sam: SamModel, prepared_slots: int = 8) -> None:
        self.sam = sam
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)
        self._prepared: OrderedDict[int, tuple[ImageEmbedding, PreparedImage]] = OrderedDict()
        self._slots = prepared_slots
        self._lock = threading.Lock()
        with torch.inference_mode():
            self._dense_pe = sam.prompt_encoder.get_dense_pe()

    # -- public ---------------------------------------------------------------------------

    def predict(
        self,
        embedding: ImageEmbedding,
        prompts: Prompts,
        multimask: bool | None = None,
    ) -> DecodeResult:
        """Validate ``prompts`` (napari frame) and decode.

        ``multimask=None`` means: three candidates for an ambiguous prompt (a single point,
        or a single scribble point, and no box), one mask otherwise (as SAM's authors advise).
        """
        sam_prompts = to_sam_prompts(prompts, embedding.original_size)
        if multimask is None:
            multimask = is_ambiguous(sam_prompts)
        return self.decode(embedding, sam_prompts, multimask=multimask)

    def decode(
        self, embedding: ImageEmbedding, prompts: SamPrompts, multimask: bool = True
    ) -> DecodeResult:
        """Decode SAM-frame prompts; the same contract as ``SamPredictor.predict``."""
        device = embedding.features.device
        coords = labels = box = mask_input = None
        if prompts.point_coords is not None:
            xy = self.transform.apply_coords(prompts.point_coords, embedding.original_size)
            coords = torch.as_tensor(xy, dtype=torch.float, device=device)[None, :, :]
            labels = torch.as_tensor(prompts.point_labels, dtype=torch.int, device=device)[None, :]
        if prompts.box is not None:
            xyxy = self.transform.apply_boxes(prompts.box, embedding.original_size)
            box = torch.as_tensor(xyxy, dtype=torch.float, device=device)[None, :]
        if prompts.mask_input is not None:
            mask_input = torch.as_tensor(prompts.mask_input, dtype=torch.float, device=device)
            mask_input = mask_input[None, :, :, :]

        with torch.inference_mode():
            sparse, dense = self.sam.prompt_encoder(
                points=None if coords is None else (coords, labels), boxes=box, masks=mask_input
            )
            if mask_input is None:
                all_masks, all_iou = self._decode_prepared(self.prepare(embedding), sparse)
                keep = slice(1, None) if multimask else slice(0, 1)
                low_res, iou = all_masks[:, keep], all_iou[:, keep]
            else:
                low_res, iou = self.sam.mask_decoder(
                    image_embeddings=embedding.features,
                    image_pe=self._dense_pe,
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=multimask,
                )
            logits = self._upscale(low_res, embedding.input_size, embedding.original_size)
            masks = logits > self.sam.mask_threshold
            stability = calculate_stability_score(logits, self.sam.mask_threshold, STABILITY_OFFSET)
            stability = torch.nan_to_num(stability, nan=0.0)

        iou_np = iou[0].float().cpu().numpy()
        return DecodeResult(
            masks=masks[0].cpu().numpy(),
            iou=iou_np,
            stability=stability[0].float().cpu().numpy(),
            low_res_logits=low_res[0].float().cpu().numpy(),
            best=int(np.argmax(iou_np)),
            key=embedding.key,
        )

    def prepare(self, embedding: ImageEmbedding) -> PreparedImage:
        """Compute (or fetch) the image-only decoder state for ``embedding``.

        Call it right after encoding, in the same background thread, so the first click
        on a new image does not pay for it.
        """
        with self._lock:
            entry = self._prepared.get(id(embedding))
            if entry is not None and entry[0] is embedding:
                self._prepared.move_to_end(id(embedding))
                return entry[1]
        prepared = self._prepare(embedding)
        with self._lock:
            self._prepared[id(embedding)] = (embedding, prepared)
            while len(self._prepared) > self._slots:
                self._prepared.popitem(last=False)
        return prepared

    # -- image-only work -------------------------------------------------------------------

    @torch.inference_mode()
    def _prepare(self, embedding: ImageEmbedding) -> PreparedImage:
        # Same ops as MaskDecoder.predict_masks / TwoWayTransformer.forward / the first
        # TwoWayAttentionBlock, for a batch of one prompt set.
        prompt_encoder = self.sam.prompt_encoder
        dense = prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
            1, -1, *prompt_encoder.image_embedding_size
        )
        src = torch.repeat_interleave(embedding.features, 1, dim=0)
        src = src + dense
        pos_src = torch.repeat_interleave(self._dense_pe, 1, dim=0)
        keys = src.flatten(2).permute(0, 2, 1)
        key_pe = pos_src.flatten(2).permute(0, 2, 1)
        first = self.sam.mask_decoder.transformer.layers[0]
        k = keys + key_pe
        t2i = first.cross_attn_token_to_image
        i2t = first.cross_attn_image_to_token
        return PreparedImage(
            keys=keys,
            key_pe=key_pe,
            token_to_image_k=t2i._separate_heads(t2i.k_proj(k), t2i.num_heads),
            token_to_image_v=t2i._separate_heads(t2i.v_proj(keys), t2i.num_heads),
            image_to_token_q=i2t._separate_heads(i2t.q_proj(k), i2t.num_heads),
        )

    def _decode_prepared(
        self, prepared: PreparedImage, sparse: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MaskDecoder.predict_masks for all 4 mask tokens, reusing ``prepared``."""
        hs, keys = run_transformer(self.sam, prepared, sparse)
        masks = mask_logits(self.sam, hs, keys)
        return masks, self.sam.mask_decoder.iou_prediction_head(hs[:, 0, :])

    def _upscale(
        self, low_res: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]
    ) -> torch.Tensor:
        return upscale_logits(self.sam, low_res, input_size, original_size)


# -- the mask decoder, split where upstream repeats image-only work -----------------------
# Module functions: the automatic mask generator (core.amg) decodes batches of points
# with them too.


def run_transformer(
    sam: SamModel, prepared: PreparedImage, sparse: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``MaskDecoder.predict_masks`` up to the transformer output, for B prompt sets.

    ``sparse`` is the (B, P, C) sparse prompt embedding. Returns the (B, 1 + 4 + P, C)
    output tokens and the (B, N, C) image tokens. The first block's image-only
    projections come from ``prepared`` (one image, broadcast over B).
    """
    decoder = sam.mask_decoder
    transformer = decoder.transformer
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
    tokens = torch.cat((output_tokens, sparse), dim=1)

    queries, query_pe = tokens, tokens
    keys, key_pe = prepared.keys, prepared.key_pe
    for index, layer in enumerate(transformer.layers):
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)

        q = queries + query_pe
        t2i = layer.cross_attn_token_to_image
        if index == 0:
            q_heads = t2i._separate_heads(t2i.q_proj(q), t2i.num_heads)
            attn_out = attend(t2i, q_heads, prepared.token_to_image_k, prepared.token_to_image_v)
        else:
            attn_out = t2i(q=q, k=keys + key_pe, v=keys)
        queries = layer.norm2(queries + attn_out)

        queries = layer.norm3(queries + layer.mlp(queries))

        q = queries + query_pe
        i2t = layer.cross_attn_image_to_token
        if index == 0:
            k_heads = i2t._separate_heads(i2t.k_proj(q), i2t.num_heads)
            v_heads = i2t._separate_heads(i2t.v_proj(queries), i2t.num_heads)
            attn_out = attend(i2t, prepared.image_to_token_q, k_heads, v_heads)
        else:
            attn_out = i2t(q=keys + key_pe, k=q, v=queries)
        keys = layer.norm4(keys + attn_out)

    q = queries + query_pe
    k = keys + key_pe
    queries = queries + transformer.final_attn_token_to_image(q=q, k=k, v=keys)
    return transformer.norm_final_attn(queries), keys


def mask_logits(sam: SamModel, hs: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The rest of ``MaskDecoder.predict_masks``: (B, 4, 256, 256) logits of all mask tokens.

    ``hs`` and ``keys`` are :func:`run_transformer`'s output tokens and image tokens.
    """
    decoder = sam.mask_decoder
    b, _, c = keys.shape
    h, w = sam.prompt_encoder.image_embedding_size
    src = keys.transpose(1, 2).view(b, c, h, w)
    upscaled = decoder.output_upscaling(src)
    mask_tokens_out = hs[:, 1 : (1 + decoder.num_mask_tokens), :]
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)],
        dim=1,
    )
    b, c, h, w = upscaled.shape
    return (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)


def upscale_logits(
    sam: SamModel,
    low_res: torch.Tensor,
    input_size: tuple[int, int],
    original_size: tuple[int, int],
) -> torch.Tensor:
    """``Sam.postprocess_masks`` without computing the padding it crops away.

    ``low_res`` is (B, K, 256, 256); returns (B, K, H, W) logits at ``original_size``
    (H, W). Upstream upsamples 256→1024 then crops to ``input_size``. Bilinear upsampling
    by 4 (align_corners=False) reads source rows up to ceil(h/4); upsampling only those
    rows by the same factor gives the same numbers for every kept output pixel.
    """
    size = sam.image_encoder.img_size
    factor = size // low_res.shape[-1]
    rows = min(low_res.shape[-2], math.ceil(input_size[0] / factor) + 1)
    cols = min(low_res.shape[-1], math.ceil(input_size[1] / factor) + 1)
    part = low_res[..., :rows, :cols]
    masks = F.interpolate(
        part, (rows * factor, cols * factor), mode="bilinear", align_corners=False
    )
    masks = masks[..., : input_size[0], : input_size[1]]
    return F.interpolate(masks, original_size, mode="bilinear", align_corners=False)


def attend(attention: Attention, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``segment_anything`` Attention.forward after the q/k/v projections.

    ``q``, ``k``, ``v`` are (B, heads, tokens, C / heads), as ``_separate_heads`` makes them.
    """
    _, _, _, c_per_head = q.shape
    attn = q @ k.permute(0, 1, 3, 2)
    attn = attn / math.sqrt(c_per_head)
    attn = torch.softmax(attn, dim=-1)
    out = attn @ v
    out = attention._recombine_heads(out)
    return attention.out_proj(out)
