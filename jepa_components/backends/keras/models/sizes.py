"""The named ViT sizes of I-JEPA: one table, read by the models, the examples and the benchmarks.

Plain data with no import, so the benchmarks read it without loading Keras
(the official side of a benchmark never imports it).
"""

__all__ = ["VIT_SIZES"]

#: ``name -> (embed_dim, depth, num_heads, mlp_ratio)``, the official ``vit_*`` factories
#: (facebookresearch/ijepa ``src/models/vision_transformer.py``).
VIT_SIZES = {
    "vit_tiny": (192, 12, 3, 4.0),
    "vit_small": (384, 12, 6, 4.0),
    "vit_base": (768, 12, 12, 4.0),
    "vit_large": (1024, 24, 16, 4.0),
    "vit_huge": (1280, 32, 16, 4.0),
    "vit_giant": (1408, 40, 16, 48 / 11),
}
