"""Hostile checkpoint files get a clean refusal: torch.save, safetensors, HF folders, official.

Every file is crafted here with plain bytes (no torch), read through the
public API, and must either load exactly or raise a ``ValueError`` that
names the file, in bounded memory and time, without opening anything
outside the folder named (see "Files you did not write" in the design
notes). Cases where memory or a hang is the point run in a fresh process
(``hostile.run_isolated``, from ``tests/security``); the others run here.
The convert modules import Keras, so this module lives under
``tests/backends`` and runs on every backend.
"""

import json
import os
import struct
import sys
import tempfile
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jepa_components.backends.keras.convert import (
    load_hf_checkpoint,
    load_official_checkpoint,
    load_torch_file,
    read_hf_checkpoint,
    read_safetensors,
    read_torch_save,
    write_safetensors,
)
from jepa_components.backends.keras.convert.huggingface import hf_shapes

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "security"))
from hostile import assert_accepted, assert_refused, make_fifo, run_isolated

SETUP = "from jepa_components.backends.keras.convert import *"
MIB = 1 << 20


# ------------------------------------------------------------------ crafting torch.save files
def _str(text):
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value):
    return b"I%d\n" % value


def _tuple(values):
    return b"(" + b"".join(_int(v) for v in values) + b"t"


def tensor_pickle(tensors, storage_type="FloatStorage"):
    """A protocol-2 ``data.pkl``: ``{name: (storage key, numel, offset, size, stride)}``."""
    out = bytearray(b"\x80\x02}(")
    for name, (key, numel, offset, size, stride) in tensors.items():
        out += _str(name) + b"ctorch._utils\n_rebuild_tensor_v2\n("
        out += b"(" + _str("storage") + f"ctorch\n{storage_type}\n".encode() + _str(str(key))
        out += _str("cpu") + _int(numel) + b"tQ" + _int(offset) + _tuple(size) + _tuple(stride)
        out += b"\x89ccollections\nOrderedDict\n)RtR"
    return bytes(out + b"u.")


def write_pth(path, pickle_bytes, storages, byteorder=b"little"):
    """A ``torch.save``-layout zip: ``archive/data.pkl``, ``byteorder``, ``data/<key>``."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/byteorder", byteorder)
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
    return path


def write_deflated_zeros(archive, name, size):
    """An entry of ``size`` zero bytes, deflated by 16 MiB chunks (never held in memory)."""
    chunk = bytes(16 * MIB)
    with archive.open(name, "w", force_zip64=True) as entry:
        for start in range(0, size, len(chunk)):
            entry.write(chunk[: size - start])


def floats(n):
    return np.arange(n, dtype="<f4").tobytes()


def _outcome(read, path):
    """``(value, None)``, or ``(None, message)`` when ``read`` raises a ValueError."""
    try:
        return read(path), None
    except ValueError as error:
        return None, str(error)


def _read(path, memory_mib=64, call="read_torch_save", **kwargs):
    return run_isolated(
        f"result = {call}({str(path)!r})", setup=SETUP, memory_mib=memory_mib, **kwargs
    )


# ------------------------------------------------------------------ torch.save: tensor layouts
def test_torch_save__stride_zero_tensor_is_a_read_only_view(tmp_path):
    path = write_pth(
        tmp_path / "broadcast.pth",
        tensor_pickle({"w": (0, 16, 0, (2**14, 2**15), (0, 0))}),
        {0: floats(16)},
    )
    assert os.path.getsize(path) < 1024  # declares a 2 GiB float32 tensor
    result = run_isolated(
        f"w = read_torch_save({str(path)!r})['w']\n"
        "result = [list(w.shape), w.flags.writeable, w.flags.owndata, float(w[-1, -1])]",
        setup=SETUP,
        memory_mib=64,
    )
    assert assert_accepted(result) == [[2**14, 2**15], False, False, 0.0]


def test_torch_save__overlapping_strides_stay_a_view_dense_ones_are_copied(tmp_path):
    path = write_pth(
        tmp_path / "overlap.pth",
        tensor_pickle(
            {"overlap": (0, 16, 1, (4, 3), (1, 2)), "transposed": (0, 16, 0, (4, 4), (1, 4))}
        ),
        {0: floats(16)},
    )
    state = read_torch_save(path)
    base = np.arange(16, dtype=np.float32)
    expected = np.lib.stride_tricks.as_strided(base[1:], (4, 3), (4, 8))
    np.testing.assert_array_equal(state["overlap"], expected)
    assert not state["overlap"].flags.writeable
    np.testing.assert_array_equal(state["transposed"], base.reshape(4, 4).T)


@pytest.mark.parametrize(
    "offset, size, stride, match",
    [
        (10, (4, 2), (2, 1), "reaches past its storage of 16 elements"),
        (0, (17,), (1,), "reaches past"),
        (0, (1,) * 100, (1,) * 100, "100 sizes and 100 strides"),
        (0, (4, 2), (-2, 1), "negative values"),
        (0, (-4, 2), (2, 1), "negative values"),
        (-1, (4,), (1,), "negative values"),
        (0, (2**40, 2**40), (0, 0), r"declares \d+ elements"),
    ],
)
def test_torch_save__bad_tensor_layouts_are_refused(tmp_path, offset, size, stride, match):
    path = write_pth(
        tmp_path / "layout.pth",
        tensor_pickle({"w": (0, 16, offset, size, stride)}),
        {0: floats(16)},
    )
    with pytest.raises(ValueError, match=match) as error:
        read_torch_save(path)
    assert str(path) in str(error.value)


@settings(max_examples=40, deadline=None)
@given(
    numel=st.integers(0, 24),
    offset=st.integers(-2, 24),
    size=st.lists(st.integers(-1, 5), max_size=4),
    stride=st.lists(st.integers(-2, 8), max_size=4),
)
def test_torch_save__random_layouts_load_exactly_or_raise_value_error(numel, offset, size, stride):
    with tempfile.TemporaryDirectory() as folder:
        path = write_pth(
            os.path.join(folder, "x.pth"),
            tensor_pickle({"w": (0, numel, offset, tuple(size), tuple(stride))}),
            {0: floats(numel)},
        )
        valid = (
            len(size) == len(stride)
            and min(size + stride + [offset], default=0) >= 0
            and (0 in size or offset + sum((n - 1) * s for n, s in zip(size, stride)) < numel)
        )
        got, refused = _outcome(read_torch_save, path)
        if refused is not None:
            assert not valid, refused
            assert path in refused
            return
        assert valid
        got = got["w"]
        base = np.arange(max(numel, 1), dtype=np.float32)
        expected = (
            np.zeros(size, np.float32)
            if 0 in size
            else np.lib.stride_tricks.as_strided(
                base[offset:], tuple(size), tuple(4 * s for s in stride)
            )
        )
        np.testing.assert_array_equal(got, expected)
        assert got.shape == tuple(size) and got.dtype == np.float32


# ------------------------------------------------------------------ torch.save: pickle bombs
def test_torch_save__tuple_dag_dict_key_is_refused_fast(tmp_path):
    levels = b"h\x00h\x00\x86q\x00" * 60  # each level: (previous, previous), memoized as 0
    bomb = b"\x80\x02K\x00q\x00" + levels + b"}q\x01h\x01h\x00K\x01s."
    path = write_pth(tmp_path / "dag.pth", bomb, {})
    assert os.path.getsize(path) < 2048
    result = _read(path, timeout_s=20)
    assert_refused(result, match="pickle bomb", file=path)
    assert result.elapsed_s < 2


def test_torch_save__deep_nesting_and_damaged_pickles_are_refused(tmp_path):
    deep = b"\x80\x02" + b"]q\x00" * 5000 + b"a" * 4999 + b"."  # 5000 nested lists
    path = write_pth(tmp_path / "deep.pth", deep, {})
    with pytest.raises(ValueError, match=f"{path}.*nests containers"):
        read_torch_save(path)
    for damaged in (b"\x80\x02h\x05.", b"\x80\x02(((t", b"\x80\x02}q\x00", b"\x80\x02a."):
        write_pth(path, damaged, {})
        with pytest.raises(ValueError, match=f"{path}.*(damaged|truncated)"):
            read_torch_save(path)


def test_torch_save__bad_crc_is_refused(tmp_path):
    path = write_pth(tmp_path / "crc.pth", tensor_pickle({"w": (0, 4, 0, (4,), (1,))}), {})
    data = bytearray(path.read_bytes())
    at = data.index(b"_rebuild_tensor_v2")
    data[at] ^= 0x20  # a changed byte inside data.pkl: its CRC-32 no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"{path}.*(CRC|damaged)"):
        read_torch_save(path)


# ------------------------------------------------------------------ torch.save: decompression
def test_torch_save__deflated_storage_inflating_to_1gib_is_refused(tmp_path):
    path = tmp_path / "bomb.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("archive/data.pkl", tensor_pickle({"w": (0, 16, 0, (16,), (1,))}))
        archive.writestr("archive/byteorder", b"little")
        write_deflated_zeros(archive, "archive/data/0", 1 << 30)
    assert os.path.getsize(path) < 8 * MIB
    result = _read(path, memory_mib=64)
    assert_refused(result, match=r"declares 1073741824 bytes, more than the 64", file=path)
    assert result.elapsed_s < 5


def test_torch_save__deflated_byteorder_bomb_is_refused(tmp_path):
    path = tmp_path / "byteorder.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("archive/data.pkl", tensor_pickle({}))
        write_deflated_zeros(archive, "archive/byteorder", 1 << 30)
    result = _read(path, memory_mib=64)
    assert_refused(result, match=r"byteorder.*more than the 16", file=path)


def test_torch_save__deflated_storage_within_its_size_reads_exactly(tmp_path):
    path = tmp_path / "deflated.pth"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", tensor_pickle({"w": (0, 6, 0, (2, 3), (3, 1))}))
        archive.writestr("archive/data/0", floats(6))
    np.testing.assert_array_equal(
        read_torch_save(path)["w"], np.arange(6, dtype=np.float32).reshape(2, 3)
    )


def test_torch_save__fifo_is_refused_unopened(tmp_path):
    path = tmp_path / "pipe.pth"
    make_fifo(path)
    for call in ("read_torch_save", "load_torch_file"):
        assert_refused(_read(path, call=call, timeout_s=10), match="FIFO", file=path)


# ------------------------------------------------------------------ safetensors
def write_header(path, header, data=b"", length=None):
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return path


@pytest.mark.parametrize(
    "header, data, match",
    [
        ([1, 2], b"", "a JSON list, not an object"),
        (None, b"", "a JSON NoneType, not an object"),
        (b"{" * 100_000, b"", "nests too deeply|not valid JSON"),
        (b'{"a": 1, "a": 2}', b"", "duplicate names"),
        ({"w": {"dtype": "F32", "shape": "abc", "data_offsets": [0, 12]}}, bytes(12), "shape"),
        ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0.0, 12.0]}}, bytes(12), "offsets"),
        ({"w": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, bytes(4), "shape"),
        ({"w": {"dtype": "X9", "shape": [1], "data_offsets": [0, 4]}}, bytes(4), "dtype"),
        ({"w": {"dtype": "F32", "shape": [1] * 40, "data_offsets": [0, 4]}}, bytes(4), "32 dim"),
        ({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}}, bytes(12), "needs 16"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            bytes(12),
            "overlapping",
        ),
        (
            {
                "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
            },
            bytes(12),
            "a gap",
        ),
        ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(8), "trailing"),
        ({"__metadata__": [1], "w": {}}, b"", "__metadata__"),
    ],
    ids=lambda value: str(value)[:24],
)
def test_safetensors__malformed_headers_are_refused(tmp_path, header, data, match):
    path = write_header(tmp_path / "x.safetensors", header, data)
    with pytest.raises(ValueError, match=match) as error:
        read_safetensors(path)
    assert str(path) in str(error.value)


def test_safetensors__header_length_past_the_file_is_refused(tmp_path):
    path = write_header(tmp_path / "x.safetensors", {}, length=1 << 40)
    with pytest.raises(ValueError, match=f"{path}.*truncated"):
        read_safetensors(path)


_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "U8": "u1", "BOOL": "?"}


@settings(max_examples=60, deadline=None)
@given(
    entries=st.lists(
        st.tuples(
            st.sampled_from([*_DTYPES, "BF16", "Q4", 3]),
            st.one_of(st.lists(st.integers(-1, 4), max_size=3), st.just("x"), st.none()),
            st.one_of(
                st.lists(st.integers(-4, 40), min_size=2, max_size=2),
                st.lists(st.floats(0, 40), min_size=2, max_size=2),
            ),
        ),
        max_size=4,
    ),
    extra=st.integers(0, 8),
)
def test_safetensors__random_headers_load_exactly_or_raise_value_error(entries, extra):
    header = {
        f"t{i}": {"dtype": kind, "shape": shape, "data_offsets": offsets}
        for i, (kind, shape, offsets) in enumerate(entries)
    }
    data = bytes(range(256)) * 1
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "x.safetensors")
        text = json.dumps(header).encode()
        size = max([int(o[1]) for *_, o in entries if o[1] >= 0] + [0]) + extra
        with open(path, "wb") as f:
            f.write(struct.pack("<Q", len(text)) + text + data[:size])
        tensors, refused = _outcome(read_safetensors, path)
        if refused is not None:
            assert path in refused
            return
        for name, info in header.items():  # accepted: every tensor exactly as declared
            begin, end = info["data_offsets"]
            kind = "<u2" if info["dtype"] == "BF16" else _DTYPES[info["dtype"]]
            raw = np.frombuffer(data[begin:end], kind).reshape(info["shape"])
            if info["dtype"] == "BF16":
                raw = (raw.astype(np.uint32) << 16).view(np.float32)
            np.testing.assert_array_equal(tensors[name], raw)


# ------------------------------------------------------------------ Hugging Face folders
CONFIG = dict(
    model_type="ijepa",
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=32,
    image_size=16,
    patch_size=8,
    num_channels=3,
    qkv_bias=True,
    hidden_act="gelu",
    layer_norm_eps=1e-6,
)


def hf_folder(folder, config=CONFIG, weights=True):
    """A tiny valid save_pretrained folder (5.x keys, zeros), or just its config."""
    os.makedirs(folder, exist_ok=True)
    kwargs = dict(embed_dim=16, in_channels=3, patch_size=8, depth=1, mlp_ratio=2.0, qkv_bias=True)
    if weights:
        shapes = hf_shapes(kwargs, (2, 2))
        write_safetensors(
            os.path.join(folder, "model.safetensors"),
            {key: np.zeros(shape, np.float32) for key, shape in shapes.items()},
        )
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write(config if isinstance(config, str) else json.dumps(config))
    return folder


def test_hf__the_valid_folder_loads(tmp_path):
    model = load_hf_checkpoint(hf_folder(tmp_path / "ok"), predictor_embed_dim=8, seed=0)
    assert model.encoder.embed_dim == 16 and model.encoder.depth == 1


@pytest.mark.parametrize(
    "change, match",
    [
        ({"intermediate_size": 10**9}, "`intermediate_size` must be an integer from 1 to"),
        ({"intermediate_size": 10**6}, r"`layers.0.mlp.fc1.weight`: \(32, 16\) in the checkpoint"),
        ({"hidden_size": 2**30}, "`hidden_size` must be an integer from 1 to"),
        ({"num_hidden_layers": 100_000}, "num_hidden_layers=100000, its weights hold 1 blocks"),
        ({"image_size": 2**20, "patch_size": 1}, "more than 262144"),
    ],
)
def test_hf__absurd_config_sizes_are_refused_before_building(tmp_path, change, match):
    folder = hf_folder(tmp_path / "big", {**CONFIG, **change})
    result = run_isolated(
        f"load_hf_checkpoint({str(folder)!r}, predictor_embed_dim=8)",
        setup=SETUP,
        memory_mib=256,
    )
    assert_refused(result, match=match, file=folder)
    assert result.elapsed_s < 5


@pytest.mark.parametrize(
    "change, match",
    [
        ({"hidden_size": None}, r"`hidden_size` must be an integer.*None"),
        ({"hidden_size": [16]}, r"`hidden_size` must be an integer"),
        ({"hidden_size": "16"}, r"`hidden_size` must be an integer.*'16' \(str\)"),
        ({"hidden_size": 16.9}, r"`hidden_size` must be an integer.*16.9"),
        ({"hidden_size": 16.0}, r"`hidden_size` must be an integer"),
        ({"hidden_size": 0}, r"`hidden_size` must be an integer from 1"),
        ({"num_hidden_layers": True}, r"`num_hidden_layers` must be an integer.*True"),
        ({"qkv_bias": "false"}, r"`qkv_bias` must be true or false.*'false'"),
        ({"qkv_bias": 0}, r"`qkv_bias` must be true or false"),
        ({"patch_size": 0}, r"`patch_size` must be an integer from 1"),
        ({"image_size": [16, "16"]}, r"`image_size` must be an integer"),
        ({"patch_size": 32}, "smaller than patch_size"),
        ({"layer_norm_eps": 0}, "`layer_norm_eps` must be > 0"),
        ({"layer_norm_eps": "1e-6"}, "`layer_norm_eps` must be a finite number"),
        ({"num_attention_heads": 3}, "not divisible by num_attention_heads=3"),
        ({"hidden_act": ["gelu"]}, "hidden_act=.* is not supported"),
        ({"hidden_dropout_prob": 2.0}, "hidden_dropout_prob` must be in"),
    ],
    ids=lambda value: str(value)[:30],
)
def test_hf__config_values_are_never_coerced(tmp_path, change, match):
    folder = hf_folder(tmp_path / "strict", {**CONFIG, **change})
    with pytest.raises(ValueError, match=match) as error:
        load_hf_checkpoint(folder, predictor_embed_dim=8)
    assert os.path.join(str(folder), "config.json") in str(error.value)


@pytest.mark.parametrize(
    "text, match",
    [
        ("[1, 2]", "holds a JSON list, not an object"),
        ('{"hidden_size": 16,', "is not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nests too deeply|not valid JSON"),
        ('{"layer_norm_eps": NaN}', "NaN is not valid JSON"),
        ('{"layer_norm_eps": Infinity}', "Infinity is not valid JSON"),
        ('{"layer_norm_eps": 1e999}', "layer_norm_eps` must be a finite number"),
    ],
    ids=["list", "bad-json", "deep", "nan", "inf", "overflow"],
)
def test_hf__config_files_that_are_not_configs_are_refused(tmp_path, text, match):
    folder = hf_folder(tmp_path / "cfg", text)
    with pytest.raises(ValueError, match=match) as error:
        load_hf_checkpoint(folder, predictor_embed_dim=8)
    assert str(folder) in str(error.value)


def sharded_folder(tmp_path, shard):
    folder = hf_folder(tmp_path / "sharded", weights=False)
    index = {"metadata": {}, "weight_map": {"layernorm.weight": shard}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize("shard", ["../outside/model.safetensors", "/etc/passwd"])
def test_hf__shard_index_pointing_outside_the_folder_is_refused(tmp_path, shard):
    outside = tmp_path / "outside"
    outside.mkdir()
    write_safetensors(outside / "model.safetensors", {"layernorm.weight": np.zeros(16, "f4")})
    folder = sharded_folder(tmp_path, shard)
    with pytest.raises(ValueError, match="outside the folder") as error:
        read_hf_checkpoint(folder)
    assert str(folder) in str(error.value) and "bytes" not in str(error.value)


def test_hf__shard_symlink_out_of_the_folder_is_refused(tmp_path):
    folder = sharded_folder(tmp_path, "model-1.safetensors")
    secret = tmp_path / "secret.safetensors"
    write_safetensors(secret, {"layernorm.weight": np.zeros(16, "f4")})
    os.symlink(secret, folder / "model-1.safetensors")
    with pytest.raises(ValueError, match="resolves outside the folder"):
        read_hf_checkpoint(folder)


def test_hf__cache_snapshot_links_into_its_blobs_still_load(tmp_path):
    """``snapshot_download`` without ``local_dir``: a snapshot of links into ``../../blobs``."""
    blobs, snapshot = tmp_path / "models--x" / "blobs", tmp_path / "models--x" / "snapshots" / "a1"
    hf_folder(blobs)
    snapshot.mkdir(parents=True)
    index = {"weight_map": {"layernorm.weight": "model-1.safetensors"}}
    (blobs / "index").write_text(json.dumps(index))
    write_safetensors(blobs / "shard", {"layernorm.weight": np.ones(16, "f4")})
    for name, blob in [
        ("config.json", "config.json"),
        ("model.safetensors.index.json", "index"),
        ("model-1.safetensors", "shard"),
    ]:
        os.symlink(os.path.join("..", "..", "blobs", blob), snapshot / name)
    config, state = read_hf_checkpoint(snapshot)
    assert config["hidden_size"] == 16 and state["layernorm.weight"].tolist() == [1.0] * 16


def test_hf__fifo_shard_is_refused_unopened(tmp_path):
    folder = sharded_folder(tmp_path, "model-1.safetensors")
    make_fifo(folder / "model-1.safetensors")
    result = run_isolated(
        f"read_hf_checkpoint({str(folder)!r})", setup=SETUP, memory_mib=64, timeout_s=10
    )
    assert_refused(result, match="FIFO", file=folder)


# ------------------------------------------------------------------ official checkpoints
def test_official__zero_size_blocks_are_refused_before_a_2000_block_model_exists(tmp_path):
    tensors = {
        "patch_embed.proj.weight": (0, 400, 0, (8, 3, 4, 4), (48, 16, 4, 1)),
        "pos_embed": (0, 400, 0, (1, 4, 8), (32, 8, 1)),
        "blocks.0.mlp.fc1.weight": (0, 400, 0, (32, 8), (8, 1)),
        **{f"blocks.{i}.norm1.weight": (0, 400, 0, (0,), (1,)) for i in range(1, 2000)},
    }
    path = write_pth(tmp_path / "deep.pth", tensor_pickle(tensors), {0: floats(400)})
    result = run_isolated(
        f"load_official_checkpoint({str(path)!r}, num_heads=2)", setup=SETUP, memory_mib=256
    )
    assert_refused(result, match=r"shape mismatch for `blocks.1.norm1.weight`: \(0,\)", file=path)
    assert result.elapsed_s < 10


def test_official__broadcast_tensors_are_refused(tmp_path):
    tensors = {
        "patch_embed.proj.weight": (0, 400, 0, (8, 3, 4, 4), (0, 0, 0, 0)),
        "pos_embed": (0, 400, 0, (1, 4, 8), (32, 8, 1)),
        "blocks.0.mlp.fc1.weight": (0, 400, 0, (32, 8), (8, 1)),
    }
    path = write_pth(tmp_path / "broadcast.pth", tensor_pickle(tensors), {0: floats(400)})
    with pytest.raises(ValueError, match=f"(?s){path}.*`patch_embed.proj.weight`.*broadcast"):
        load_official_checkpoint(path, num_heads=2)


def test_official__non_string_keys_are_refused(tmp_path):
    path = write_pth(
        tmp_path / "keys.pth", b"\x80\x02}(K\x01K\x02u.", {}
    )  # {1: 2}: not a state dict
    with pytest.raises(ValueError, match=r"Not an official I-JEPA checkpoint|keys"):
        load_official_checkpoint(path)
    assert load_torch_file(path) == {1: 2}
