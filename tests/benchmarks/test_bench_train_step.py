"""benchmarks/bench_train_step.py: the equal-work caps of --masks sampler."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
bench = pytest.importorskip("bench_train_step")
_official = pytest.importorskip("_official")


def test_parse_args__caps_are_positive_ints_or_official_and_need_the_sampler(capsys):
    """Also refused: a grid where the official collator redraws a target forever
    (its blocks there can have no more than ``min_keep`` patches)."""
    sampler = ["--masks", "sampler", "--image-size", "224"]
    args = bench.parse_args(sampler + ["--context-length", "61"])
    assert (args.context_length, args.target_length) == (61, None)
    args = bench.parse_args(sampler + ["--target-length", "official"])
    assert args.target_length == "official"
    for argv, message in (
        (["--context-length", "61"], "--context-length needs --masks sampler"),
        (["--target-length", "official"], "--target-length needs --masks sampler"),
        (sampler + ["--context-length", "0"], "got '0'"),
        (sampler + ["--target-length", "many"], "got 'many'"),
        (["--masks", "sampler", "--image-size", "128"], "target blocks of 9 patches"),
    ):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
        assert message in capsys.readouterr().err


def test_official_lengths__the_collator_means_become_our_caps():
    """``official`` resolves to the rounded means of the official collator's cut
    batches (seeded: every worker gets the same numbers), and reaches the workers'
    command line; our sampler then has one shape of those lengths."""
    reason = _official.missing_reason()
    if reason:
        pytest.skip(reason)
    argv = ["--masks", "sampler", "--image-size", "144", "--context-length", "official"]
    argv += ["--target-length", "official", "--batch", "8"]
    args = bench.parse_args(argv)
    lengths = bench.official_mask_lengths(args, batches=20)
    assert lengths == bench.official_mask_lengths(bench.parse_args(argv), batches=20)
    worker_argv = bench.resolve_official_lengths(args, argv)
    assert (args.context_length, args.target_length) == bench.official_mask_lengths(args)
    resolved = bench.parse_args(worker_argv)
    assert (resolved.context_length, resolved.target_length) == (
        args.context_length,
        args.target_length,
    )
    assert 10 < args.context_length <= 81 and 10 < args.target_length <= 81  # a 9x9 grid
    images, _ = bench.make_inputs(args)
    _, _, sampler = bench.keras_data(args, None, images, total_steps=2)
    batch = sampler.sample(8)
    assert batch.context.shape == (8, args.context_length)
    assert batch.targets.shape[2] == args.target_length
    assert sampler.padded_lengths() == ((args.context_length,), (args.target_length,))
    assert np.all(batch.context_valid.sum(1) <= args.context_length)
