"""Every ```python example of the README runs, on the current KERAS_BACKEND.

Blocks under the same ``## `` heading share one namespace and run in order
(a later block may use a name an earlier one defined). A block runs in a
fresh temporary working directory per section. An HTML comment on the line
before a block's fence sets it up:

- ``<!-- readme-test: setup=NAME -->``: call ``SETUPS[NAME](tmp_path)``
  first (writes the files the example names, e.g. a tiny checkpoint under the
  official file name, so the README can show the real call);
- ``<!-- readme-test: needs=MODULE -->``: skip unless MODULE imports
  (e.g. ``tensorflow``, ``jax``).

No block is skipped silently: a block without a directive must run.
"""

import importlib
import os
import re

import numpy as np
import pytest

README = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "README.md")
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
DIRECTIVE = re.compile(r"<!-- readme-test: (\w+)=([\w.-]+) -->\s*$")


def _sections():
    text = open(README, encoding="utf-8").read()
    sections, title, blocks = [], "(top)", []
    position = 0
    for match in FENCE.finditer(text):
        before = text[position:match.start()]
        for line in before.splitlines():
            if line.startswith("## "):
                if blocks:
                    sections.append((title, blocks))
                title, blocks = line[3:].strip(), []
        previous = before.rstrip("\n").splitlines()[-1] if before.strip() else ""
        directive = DIRECTIVE.search(previous)
        blocks.append((match.group(1), dict([directive.groups()]) if directive else {}))
        position = match.end()
    if blocks:
        sections.append((title, blocks))
    return sections


def _tiny_official_checkpoint(tmp_path):
    """``IN1K-vit.h.14-300e.pth.tar``: a 1-block ViT-Tiny/14 at 224 px, 299 epochs done.

    (ViT-Tiny width: the loader infers the head count from the official size table.)
    """
    pytest.importorskip("torch")
    from jepa_components.backends.keras import IJEPA, Predictor, VisionTransformer
    from jepa_components.backends.keras import export_official_checkpoint

    encoder = VisionTransformer(image_size=224, patch_size=14, embed_dim=192, depth=1,
                                num_heads=3, seed=0)
    predictor = Predictor(num_patches=256, embed_dim=192, predictor_embed_dim=48, depth=1,
                          num_heads=3, seed=1)
    model = IJEPA(encoder=encoder, predictor=predictor, momentum=0.996)
    export_official_checkpoint(model, str(tmp_path / "IN1K-vit.h.14-300e.pth.tar"), epoch=299)


def _tiny_hf_folder(tmp_path):
    """``ijepa_vith14_1k/``: what ``save_pretrained`` writes, for a 1-block ViT/14."""
    from jepa_components.backends.keras import VisionTransformer, export_hf_checkpoint

    encoder = VisionTransformer(image_size=224, patch_size=14, embed_dim=32, depth=1,
                                num_heads=2, seed=0)
    export_hf_checkpoint(encoder, str(tmp_path / "ijepa_vith14_1k"))


SETUPS = {"official_checkpoint": _tiny_official_checkpoint, "hf_folder": _tiny_hf_folder}
SECTIONS = _sections()


def test_readme_has_examples():
    assert sum(len(blocks) for _, blocks in SECTIONS) >= 5


def _uses_torch(blocks):
    """A section whose blocks need torch or write a .pth file (marked ``torch``)."""
    return any(d.get("needs") == "torch" or d.get("setup") == "official_checkpoint"
               for _, d in blocks)


@pytest.mark.parametrize("title, blocks", [
    pytest.param(title, blocks, id=title, marks=[pytest.mark.torch] if _uses_torch(blocks) else [])
    for title, blocks in SECTIONS])
def test_readme_section_runs(title, blocks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"readme_{re.sub(r'[^a-z0-9]+', '_', title.lower())}"}
    for number, (code, directive) in enumerate(blocks):
        unknown = set(directive) - {"setup", "needs"}
        assert not unknown, f"unknown readme-test directive {unknown} in section {title!r}"
        if "needs" in directive:
            try:
                importlib.import_module(directive["needs"])
            except ImportError:
                pytest.skip(f"{title!r} block {number} needs {directive['needs']}")
        if "setup" in directive:
            SETUPS[directive["setup"]](tmp_path)
        np.random.seed(0)  # README snippets may use np.random for stand-in images
        try:
            exec(compile(code, f"README.md[{title} #{number}]", "exec"), namespace)
        except Exception as error:  # name the block in the failure
            raise AssertionError(f"README section {title!r}, block {number} failed: "
                                 f"{type(error).__name__}: {error}") from error
