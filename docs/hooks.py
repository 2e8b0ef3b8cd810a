"""MkDocs hook: publish the benchmark results under ``results/`` of the site.

``benchmarks/results/`` stays the one copy of the last full benchmark runs
(tables, JSON, charts); the pages link ``results/paper_claims/...`` and this
hook adds those files to the build, so the links are checked like any other.
"""

from __future__ import annotations

import os

from mkdocs.structure.files import File

RESULTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "results"
)


def on_files(files, config):
    for folder, _, names in os.walk(RESULTS):
        for name in sorted(names):
            path = os.path.join(folder, name)
            uri = "results/" + os.path.relpath(path, RESULTS).replace(os.sep, "/")
            files.append(File.generated(config, uri, abs_src_path=path))
    return files
