"""Checkpoint conversion: the official I-JEPA ``.pth`` format, Hugging Face ``IJepaModel``
folders, and a torch-free reader of ``torch.save`` files.

One file per format: :mod:`.official` (official checkpoints; reading in
:mod:`.official_reader`), :mod:`.huggingface` (Hugging Face folders, models
and state dicts; files and configs in
:mod:`.huggingface_files`), :mod:`.safetensors`
and :mod:`.torch_save` (the two file formats, read without torch), and
:mod:`.mapping`, the one table-driven loader and exporter both formats use.
"""

from jepa_components.backends.keras.convert.huggingface import (
    export_hf_checkpoint,
    hf_state_dict,
    load_hf_checkpoint,
)
from jepa_components.backends.keras.convert.huggingface_files import read_hf_checkpoint
from jepa_components.backends.keras.convert.official import (
    export_official_checkpoint,
    load_official_checkpoint,
    official_state_dicts,
)
from jepa_components.backends.keras.convert.official_reader import (
    infer_official_architecture,
    read_official_checkpoint,
)
from jepa_components.backends.keras.convert.safetensors import read_safetensors, write_safetensors
from jepa_components.backends.keras.convert.torch_save import load_torch_file, read_torch_save

__all__ = [
    "export_hf_checkpoint",
    "export_official_checkpoint",
    "hf_state_dict",
    "infer_official_architecture",
    "load_hf_checkpoint",
    "load_official_checkpoint",
    "load_torch_file",
    "official_state_dicts",
    "read_hf_checkpoint",
    "read_official_checkpoint",
    "read_safetensors",
    "read_torch_save",
    "write_safetensors",
]
