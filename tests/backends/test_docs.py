"""Every ```python example of README.md and of the docs site (docs/*.md) runs.

Each page is cut into sections at its ``## `` headings. Blocks under the same
heading share one namespace and run in order (a later block may use a name an
earlier one defined), in a fresh temporary working directory per section, on
the current KERAS_BACKEND. An HTML comment on the line before a block's fence
sets it up:

- ``<!-- docs-test: setup=NAME -->``: call ``SETUPS[NAME](tmp_path)`` first
  (writes the files the example names, e.g. a tiny checkpoint under the
  official file name, so the page can show the real call);
- ``<!-- docs-test: needs=MODULE -->``: skip unless MODULE imports (e.g.
  ``tensorflow``, ``jax``). ``needs=torch`` (and the ``official_checkpoint``
  setup, which writes a ``.pth``) mark the section ``torch``
  (``tests/backends/conftest.py``).

No block is skipped silently: a block without a directive must run.
``readme-test:`` is accepted as a synonym of ``docs-test:``.
"""

import glob
import importlib
import os
import re

import numpy as np
import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
PAGES = ["README.md"] + sorted(
    os.path.relpath(path, ROOT)
    for path in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
)
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
DIRECTIVE = re.compile(r"<!-- (?:docs|readme)-test: (\w+)=([\w.-]+) -->\s*$")


def _sections(page):
    """``[(title, [(code, directive), ...]), ...]`` of one page, in order."""
    text = open(os.path.join(ROOT, page), encoding="utf-8").read()
    sections, title, blocks = [], "(top)", []
    position = 0
    for match in FENCE.finditer(text):
        before = text[position : match.start()]
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
    from jepa_components.backends.keras import (
        IJEPA,
        Predictor,
        VisionTransformer,
        export_official_checkpoint,
    )

    encoder = VisionTransformer(
        image_size=224, patch_size=14, embed_dim=192, depth=1, num_heads=3, seed=0
    )
    predictor = Predictor(
        num_patches=256, embed_dim=192, predictor_embed_dim=48, depth=1, num_heads=3, seed=1
    )
    model = IJEPA(encoder=encoder, predictor=predictor, momentum=0.996)
    export_official_checkpoint(model, str(tmp_path / "IN1K-vit.h.14-300e.pth.tar"), epoch=299)


def _tiny_hf_folder(tmp_path):
    """``ijepa_vith14_1k/``: what ``save_pretrained`` writes, for a 1-block ViT/14."""
    from jepa_components.backends.keras import VisionTransformer, export_hf_checkpoint

    encoder = VisionTransformer(
        image_size=224, patch_size=14, embed_dim=32, depth=1, num_heads=2, seed=0
    )
    export_hf_checkpoint(encoder, str(tmp_path / "ijepa_vith14_1k"))


SETUPS = {"official_checkpoint": _tiny_official_checkpoint, "hf_folder": _tiny_hf_folder}
SECTIONS = [(page, title, blocks) for page in PAGES for title, blocks in _sections(page)]


def test_pages_have_examples():
    counts = dict.fromkeys(PAGES, 0)
    for page, _, blocks in SECTIONS:
        counts[page] += len(blocks)
    assert counts["README.md"] >= 3, counts
    assert sum(counts.values()) >= 15, counts


def _uses_torch(blocks):
    """A section whose blocks need torch or write a .pth file (marked ``torch``)."""
    return any(
        d.get("needs") == "torch" or d.get("setup") == "official_checkpoint" for _, d in blocks
    )


@pytest.mark.parametrize(
    "page, title, blocks",
    [
        pytest.param(
            page,
            title,
            blocks,
            id=f"{page}::{title}",
            marks=[pytest.mark.torch] if _uses_torch(blocks) else [],
        )
        for page, title, blocks in SECTIONS
    ],
)
def test_docs_section_runs(page, title, blocks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    slug = re.sub(r"[^a-z0-9]+", "_", f"{page} {title}".lower())
    namespace = {"__name__": f"docs_{slug}"}
    for number, (code, directive) in enumerate(blocks):
        unknown = set(directive) - {"setup", "needs"}
        assert not unknown, f"unknown docs-test directive {unknown} in {page} {title!r}"
        if "needs" in directive:
            try:
                importlib.import_module(directive["needs"])
            except ImportError:
                pytest.skip(f"{page} {title!r} block {number} needs {directive['needs']}")
        if "setup" in directive:
            SETUPS[directive["setup"]](tmp_path)
        np.random.seed(0)  # noqa: NPY002  (snippets use np.random for stand-in images)
        try:
            exec(compile(code, f"{page}[{title} #{number}]", "exec"), namespace)
        except Exception as error:  # name the block in the failure
            raise AssertionError(
                f"{page} section {title!r}, block {number} failed: {type(error).__name__}: {error}"
            ) from error
