"""SAM 2.1 masks from prompts and a cached embedding: the numbers of ``SAM2ImagePredictor.predict``.

The prompt path is the predictor's: coordinates normalised by the original size and scaled
to 1024 (no letterboxing), a box as two corner points (labels 2, 3) placed before the clicks,
the mask decoder with the two high-resolution maps (and, for a single mask, its fallback to
the most confident multimask output when the single mask is unstable), logits upsampled
straight to the original size, low-resolution logits clamped to ±32.

What is saved, as in :mod:`..decode` for SAM: work that depends on the image alone and that
the predictor repeats on every click. Without a mask prompt, the image tokens entering the
decoder (embedding + "no mask" embedding), and the first transformer block's key and value
projections of them (token-to-image attention) and query projection (image-to-token
attention) are computed once per image (:meth:`Sam2Decoder.prepare`); the dense positional
encoding once per model. The same modules then run the same float operations in the same
order, so the results are bit-identical. With a mask prompt (refinement) the image tokens
depend on the prompt, and the module's decoder runs as it is.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from segment_anything.utils.amg import calculate_stability_score
from torch.nn import functional as F

from ..decode import STABILITY_OFFSET, DecodeResult
from ..embedding import ImageEmbedding
from ..prompts import Prompts, SamPrompts, is_ambiguous, to_sam_prompts
from .base import FamilyError

LOW_RES_CLAMP = 32.0  # SAM2ImagePredictor clamps the low-res logits it returns to ±32


@dataclass(eq=False)
class Sam2Prepared:
    """Image-only decoder work for one embedding (no mask prompt)."""

    keys: torch.Tensor  # (1, 4096, 256) image tokens: embedding + no-mask embedding
    key_pe: torch.Tensor  # (1, 4096, 256) positional encoding of the grid
    token_to_image_k: torch.Tensor  # first block, heads separated
    token_to_image_v: torch.Tensor
    image_to_token_q: torch.Tensor


class Sam2Decoder:
    """``SAM2ImagePredictor.predict`` on an :class:`ImageEmbedding`; thread-safe.

    ``prepared_slots`` images keep their prepared state (about 12 MiB each), least recently
    used dropped first.
    """

    def __init__(self, model: Any, transforms: Any, prepared_slots: int = 8) -> None:
        self.model = model
        self.transforms = transforms
        self.mask_threshold = 0.0  # SAM2ImagePredictor's default
        self._prepared: OrderedDict[int, tuple[ImageEmbedding, Sam2Prepared]] = OrderedDict()
        self._slots = prepared_slots
        self._lock = threading.Lock()
        with torch.inference_mode():
            self._dense_pe = model.sam_prompt_encoder.get_dense_pe()

    def prepare(self, embedding: ImageEmbedding) -> Sam2Prepared:
        """Compute (or fetch) the image-only decoder state of ``embedding``."""
        _check_embedding(embedding)
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

    def predict(
        self, embedding: ImageEmbedding, prompts: Prompts, multimask: bool | None = None
    ) -> DecodeResult:
        """As :meth:`SamDecoder.predict <..decode.SamDecoder.predict>`, for SAM 2.1."""
        sam_prompts = to_sam_prompts(prompts, embedding.original_size)
        if multimask is None:
            multimask = is_ambiguous(sam_prompts)
        return self.decode(embedding, sam_prompts, multimask=multimask)

    def decode(
        self, embedding: ImageEmbedding, prompts: SamPrompts, multimask: bool = True
    ) -> DecodeResult:
        """Decode SAM-frame prompts: the contract (and numbers) of ``SAM2ImagePredictor.predict``."""
        _check_embedding(embedding)
        device = embedding.features.device
        with torch.inference_mode():
            points = self._points(prompts, embedding.original_size, device)
            mask_input = None
            if prompts.mask_input is not None:
                mask_input = torch.as_tensor(prompts.mask_input, dtype=torch.float, device=device)
                if mask_input.ndim == 3:
                    mask_input = mask_input[None, :, :, :]
            sparse, dense = self.model.sam_prompt_encoder(
                points=points, boxes=None, masks=mask_input
            )
            decoder = self.model.sam_mask_decoder
            if mask_input is None:
                all_masks, all_iou = self._decode_prepared(
                    self.prepare(embedding), sparse, embedding.high_res_features
                )
                if multimask:
                    low_res, iou = all_masks[:, 1:, :, :], all_iou[:, 1:]
                elif decoder.dynamic_multimask_via_stability and not decoder.training:
                    low_res, iou = decoder._dynamic_multimask_via_stability(all_masks, all_iou)
                else:
                    low_res, iou = all_masks[:, 0:1, :, :], all_iou[:, 0:1]
            else:
                low_res, iou, _, _ = decoder(
                    image_embeddings=image_tokens(self.model, embedding),
                    image_pe=self._dense_pe,
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=multimask,
                    repeat_image=False,
                    high_res_features=list(embedding.high_res_features),
                )
            logits = F.interpolate(
                low_res.float(), embedding.original_size, mode="bilinear", align_corners=False
            )
            low_res = torch.clamp(low_res, -LOW_RES_CLAMP, LOW_RES_CLAMP)
            masks = logits > self.mask_threshold
            stability = calculate_stability_score(logits, self.mask_threshold, STABILITY_OFFSET)
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

    # -- the predictor's steps, split where it repeats image-only work ----------------------

    def _points(
        self, prompts: SamPrompts, orig_hw: tuple[int, int], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``_prep_prompts`` + the box-as-corner-points merge of ``SAM2ImagePredictor._predict``."""
        transforms = self.transforms
        points = None
        if prompts.point_coords is not None:
            coords = torch.as_tensor(prompts.point_coords, dtype=torch.float, device=device)
            coords = transforms.transform_coords(coords, normalize=True, orig_hw=orig_hw)
            labels = torch.as_tensor(prompts.point_labels, dtype=torch.int, device=device)
            points = (coords[None, ...], labels[None, ...])
        if prompts.box is not None:
            box = torch.as_tensor(prompts.box, dtype=torch.float, device=device)
            corners = transforms.transform_boxes(box, normalize=True, orig_hw=orig_hw)
            corners = corners.reshape(-1, 2, 2)
            corner_labels = torch.tensor([[2, 3]], dtype=torch.int, device=device)
            if points is None:
                points = (corners, corner_labels)
            else:  # the box goes first
                points = (
                    torch.cat([corners, points[0]], dim=1),
                    torch.cat([corner_labels, points[1]], dim=1),
                )
        return points

    @torch.inference_mode()
    def _prepare(self, embedding: ImageEmbedding) -> Sam2Prepared:
        # MaskDecoder.predict_masks (repeat_image=False) / TwoWayTransformer.forward / the first
        # TwoWayAttentionBlock's image-side projections, for one prompt set without a mask
        encoder = self.model.sam_prompt_encoder
        dense = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
            1, -1, encoder.image_embedding_size[0], encoder.image_embedding_size[1]
        )
        src = image_tokens(self.model, embedding) + dense
        pos_src = torch.repeat_interleave(self._dense_pe, 1, dim=0)
        keys = src.flatten(2).permute(0, 2, 1)
        key_pe = pos_src.flatten(2).permute(0, 2, 1)
        first = self.model.sam_mask_decoder.transformer.layers[0]
        k = keys + key_pe
        t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        return Sam2Prepared(
            keys=keys,
            key_pe=key_pe,
            token_to_image_k=t2i._separate_heads(t2i.k_proj(k), t2i.num_heads),
            token_to_image_v=t2i._separate_heads(t2i.v_proj(keys), t2i.num_heads),
            image_to_token_q=i2t._separate_heads(i2t.q_proj(k), i2t.num_heads),
        )

    def _decode_prepared(
        self, prepared: Sam2Prepared, sparse: torch.Tensor, high_res: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``MaskDecoder.predict_masks`` for every mask token: (B, 4, 256, 256) logits, (B, 4)."""
        decoder = self.model.sam_mask_decoder
        s = 0
        if decoder.pred_obj_scores:
            output_tokens = torch.cat(
                [
                    decoder.obj_score_token.weight,
                    decoder.iou_token.weight,
                    decoder.mask_tokens.weight,
                ],
                dim=0,
            )
            s = 1
        else:
            output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
        tokens = torch.cat((output_tokens, sparse), dim=1)
        hs, keys = _run_transformer(decoder.transformer, prepared, tokens)
        b, _, c = keys.shape
        h, w = self.model.sam_prompt_encoder.image_embedding_size
        src = keys.transpose(1, 2).view(b, c, h, w)
        mask_tokens_out = hs[:, s + 1 : (s + 1 + decoder.num_mask_tokens), :]
        if not decoder.use_high_res_features:
            upscaled = decoder.output_upscaling(src)
        else:
            dc1, ln1, act1, dc2, act2 = decoder.output_upscaling
            feat_s0, feat_s1 = high_res
            upscaled = act1(ln1(dc1(src) + feat_s1))
            upscaled = act2(dc2(upscaled) + feat_s0)
        hyper_in = torch.stack(
            [
                mlp(mask_tokens_out[:, i, :])
                for i, mlp in enumerate(decoder.output_hypernetworks_mlps)
            ],
            dim=1,
        )
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        return masks, decoder.iou_prediction_head(hs[:, s, :])


def _run_transformer(
    transformer: Any, prepared: Sam2Prepared, tokens: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``TwoWayTransformer.forward`` with the first block's image-side projections prepared."""
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
            attn_out = _attend(t2i, q_heads, prepared.token_to_image_k, prepared.token_to_image_v)
        else:
            attn_out = t2i(q=q, k=keys + key_pe, v=keys)
        queries = layer.norm2(queries + attn_out)

        queries = layer.norm3(queries + layer.mlp(queries))

        q = queries + query_pe
        i2t = layer.cross_attn_image_to_token
        if index == 0:
            k_heads = i2t._separate_heads(i2t.k_proj(q), i2t.num_heads)
            v_heads = i2t._separate_heads(i2t.v_proj(queries), i2t.num_heads)
            attn_out = _attend(i2t, prepared.image_to_token_q, k_heads, v_heads)
        else:
            attn_out = i2t(q=keys + key_pe, k=q, v=queries)
        keys = layer.norm4(keys + attn_out)

    q = queries + query_pe
    k = keys + key_pe
    queries = queries + transformer.final_attn_token_to_image(q=q, k=k, v=keys)
    return transformer.norm_final_attn(queries), keys


def _attend(attention: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """sam2's ``Attention.forward`` after the q/k/v projections (eval: no dropout)."""
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0)
    return attention.out_proj(attention._recombine_heads(out))


def image_tokens(model: Any, embedding: ImageEmbedding) -> torch.Tensor:
    """The decoder's image embedding: the backbone map plus the "no memory" embedding.

    ``SAM2ImagePredictor.set_image`` adds ``no_mem_embed`` (1, 1, C) to the flattened
    (HW, 1, C) map; added here to the (1, C, 64, 64) map, every element gets the same sum.
    """
    if not model.directly_add_no_mem_embed:
        return embedding.features
    return embedding.features + model.no_mem_embed.reshape(1, -1, 1, 1)


def _check_embedding(embedding: ImageEmbedding) -> None:
    if len(embedding.high_res_features) != 2:
        raise FamilyError(
            "this embedding has no SAM 2.1 high-resolution feature maps: it was computed by "
            f"another model family ({embedding.key.family!r}); embed the image with this model."
        )
