"""Checkpoint conversion: the official I-JEPA ``.pth`` format, Hugging Face ``IJepaModel``
folders, and a torch-free reader of ``torch.save`` files."""
