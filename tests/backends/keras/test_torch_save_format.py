"""Reading torch.save files without torch: equal to torch.load, strict, never a crash.

torch writes the files here (tests that write skip without it); reading them
runs with torch made unimportable wherever the test can, so a hidden
``import torch`` would fail the test.
"""

import os
import sys
from collections import OrderedDict
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jepa_components.backends.keras.convert import load_torch_file, read_torch_save

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "fixtures")
PTH = os.path.join(FIXTURES, "official_tiny_ddp.pth.tar")


@pytest.fixture
def no_torch(monkeypatch):
    """``import torch`` raises ImportError for the duration of the test."""
    monkeypatch.setitem(sys.modules, "torch", None)


def as_numpy(value):
    """torch.load's object with tensors as numpy (bfloat16 widened to float32)."""
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    if isinstance(value, dict):
        return type(value)((k, as_numpy(v)) for k, v in value.items())
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, (list, tuple)):
        return type(value)(as_numpy(v) for v in value)
    return value


def assert_same(expected, got, where="root"):
    if isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray), f"{where}: {type(got).__name__}"
        assert (got.dtype, got.shape) == (expected.dtype, expected.shape), where
        np.testing.assert_array_equal(got, expected, err_msg=where)
    elif isinstance(expected, dict):
        assert type(got) is type(expected) and list(got) == list(expected), where
        for key in expected:
            assert_same(expected[key], got[key], f"{where}[{key!r}]")
    elif isinstance(expected, (list, tuple)):
        assert type(got) is type(expected) and len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(expected, got)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert type(got) is type(expected) and got == expected, (where, expected, got)


def save(tmp_path, obj, name="x.pth", **kwargs):
    import torch

    path = tmp_path / name
    torch.save(obj, path, **kwargs)
    return path


# ------------------------------------------------------------------ equal to torch.load
@pytest.mark.torch
def test_read__everything_a_checkpoint_holds_equals_torch_load(tmp_path):
    import torch

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    weight = torch.nn.Parameter(torch.ones(2, 2))
    optimizer = torch.optim.AdamW([weight], lr=1e-3)
    weight.sum().backward()
    optimizer.step()
    obj = {
        "f32": base,
        "transposed": base.T,
        "strided_view": base[1:3, ::2],
        "row": base[2],
        "f64": base.double(),
        "f16": base.half(),
        "bf16": (base / 7).bfloat16(),
        "i64": torch.arange(5),
        "i32": torch.arange(5, dtype=torch.int32),
        "i16": torch.arange(5, dtype=torch.int16),
        "i8": torch.arange(-2, 3, dtype=torch.int8),
        "u8": torch.arange(5, dtype=torch.uint8),
        "bool": torch.tensor([True, False]),
        "u16": torch.tensor([1, 65535], dtype=torch.uint16),
        "c64": torch.tensor([1 + 2j]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
        "param": weight,
        "opt": optimizer.state_dict(),
        "size": torch.Size([2, 3]),
        "bytes": b"\x00\xff",
        "od": OrderedDict(a=1, b=[1.5, "x", None, (2, 3)]),
        "set": {1, 2},
        "epoch": 3,
    }
    path = save(tmp_path, obj)
    expected = as_numpy(torch.load(path, weights_only=True))
    got = read_torch_save(path)
    assert_same(expected, got)
    assert np.shares_memory(got["f32"], got["row"])  # one storage, as in torch


DTYPES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool"]


@pytest.mark.torch
@given(
    tensors=st.dictionaries(
        st.text("abc.", min_size=1, max_size=6),
        st.tuples(
            st.sampled_from(DTYPES),
            st.lists(st.integers(0, 4), max_size=3),
            st.booleans(),
            st.integers(0, 2**31 - 1),
        ),
        max_size=4,
    )
)
def test_read__random_state_dicts_equal_torch_load(tensors, tmp_path_factory):
    import torch

    state = {}
    for name, (dtype, shape, transpose, seed) in tensors.items():
        generator = torch.Generator().manual_seed(seed)
        low = 0 if dtype in ("uint8", "bool") else -100
        values = torch.randint(low, 2 if dtype == "bool" else 100, shape, generator=generator)
        tensor = (values / 7).to(getattr(torch, dtype))
        state[name] = tensor.permute(tuple(reversed(range(tensor.ndim)))) if transpose else tensor
    path = save(tmp_path_factory.mktemp("random"), state)
    assert_same(as_numpy(torch.load(path, weights_only=True)), read_torch_save(path))


@pytest.mark.torch
def test_read__official_fixture_equals_torch_load_without_torch(monkeypatch):
    import torch

    expected = as_numpy(torch.load(PTH, map_location="cpu", weights_only=True))
    monkeypatch.setitem(sys.modules, "torch", None)
    assert_same(expected, read_torch_save(PTH))


def test_read__official_fixture_without_torch(no_torch):
    checkpoint = read_torch_save(PTH)
    assert {"encoder", "predictor", "target_encoder", "epoch"} <= set(checkpoint)
    weight = checkpoint["encoder"]["module.patch_embed.proj.weight"]
    assert weight.dtype == np.float32 and weight.ndim == 4 and np.isfinite(weight).all()


# ------------------------------------------------------------------ strict
@pytest.mark.torch
def test_refuses__objects_outside_the_allowlist(tmp_path, monkeypatch):
    path = save(tmp_path, {"w": 1.0, "odd": Fraction(1, 3)})
    assert load_torch_file(path, weights_only=False)["odd"] == Fraction(1, 3)  # torch.load
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ValueError, match=r"fractions\.Fraction.*weights_only=False"):
        read_torch_save(path)
    with pytest.raises(ValueError, match=r"fractions\.Fraction"):
        load_torch_file(path)


@pytest.mark.torch
def test_old_format__needs_torch_load(tmp_path):
    import torch

    path = save(tmp_path, {"w": torch.arange(3.0)}, _use_new_zipfile_serialization=False)
    with pytest.raises(ValueError, match=r"older torch.*torch.load"):
        read_torch_save(path)
    assert load_torch_file(path)["w"].tolist() == [0.0, 1.0, 2.0]


# ------------------------------------------------------------------ damaged files
def test_truncated__every_cut_is_a_value_error(tmp_path, no_torch):
    data = open(PTH, "rb").read()
    path = tmp_path / "cut.pth"
    for length in sorted({4, 30, 100, 1000, *range(0, len(data), max(1, len(data) // 40))}):
        path.write_bytes(data[:length])
        with pytest.raises(ValueError, match=r"truncated|not a zip|not a PyTorch"):
            load_torch_file(path)


def test_damaged__overwritten_bytes_never_crash(tmp_path, no_torch):
    data = bytearray(open(PTH, "rb").read())
    rng = np.random.default_rng(0)
    path = tmp_path / "noisy.pth"
    for _ in range(30):
        noisy = bytearray(data)
        start = int(rng.integers(0, len(data) - 64))
        noisy[start : start + 64] = rng.bytes(64)
        path.write_bytes(bytes(noisy))
        try:
            read_torch_save(path)  # storage bytes carry no checksum: may read fine
        except ValueError:
            pass


def test_errors__path_file_and_archive(tmp_path, no_torch):
    with pytest.raises(ValueError, match="Invalid value for argument `path`"):
        read_torch_save(42)
    with pytest.raises(FileNotFoundError, match=r"absent.pth"):
        load_torch_file(tmp_path / "absent.pth")
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(ValueError, match="is not a PyTorch file"):
        load_torch_file(text)
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "not torch")
    with pytest.raises(ValueError, match=r"not a torch.save archive"):
        read_torch_save(tmp_path / "other.zip")
