"""Where the time of an I-JEPA training step goes: each part timed alone, ours vs official.

For every Keras backend (one subprocess each) and for the official PyTorch
step in the same process, times the parts of the step one by one, with the
same weights, inputs and shapes as ``bench_train_step.py``:

- ``target``: target encoder on the full image + layer norm + gather
  (forward, no gradient);
- ``context_fwd``: context encoder on the context tokens (forward);
- ``predictor_fwd``: predictor (forward);
- ``forward``: target + context + predictor + loss;
- ``forward_backward``: ``forward`` and the gradients of every trained
  weight (so ``backward = forward_backward - forward``);
- ``optimizer``: one AdamW update; ``ema``: one target update;
- ``train_step``: the backend's compiled Keras train function called
  directly (no ``fit`` loop); ``fit``: a steady ``fit`` step (so
  ``Keras fit overhead = fit - train_step``); for the official code
  ``step`` is its whole step.

Compiled backends (jax; tensorflow's ``tf.function``) compile every part on
its own, so parts do not add up exactly to the fused step. Each part is
run ``--reps`` times, ours and official alternating, and the median wall
and process-CPU times are printed (CPU time is steadier on a loaded
machine; on ``n`` threads it can exceed wall time up to ``n``-fold).

    python benchmarks/profile_train_step.py --backends jax,torch,tensorflow --threads 2

``--xla-ops`` (jax) also traces ``--reps`` calls of the compiled train step
with ``jax.profiler`` and sums XLA's CPU kernels (thunks) by kind: dots
(YNNPACK fusions and XLA's own), copies and transposes, and the other
fusions (elementwise, reductions), with the number of kernels per step.

    python benchmarks/profile_train_step.py --backends jax --threads 2 --xla-ops
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_train_step as bench  # noqa: E402
import numpy as np  # noqa: E402

PARTS = (
    "target",
    "context_fwd",
    "predictor_fwd",
    "forward",
    "forward_backward",
    "optimizer",
    "ema",
    "train_step",
    "fit",
)


def timed(fn, sync):
    start, cpu = time.perf_counter(), time.process_time()
    sync(fn())
    return time.perf_counter() - start, time.process_time() - cpu


def jax_parts(model, x):
    import jax
    from keras import ops

    from jepa_components.context import make_targets

    def values(variables):
        return [v.value for v in variables]

    te, enc, pred = model.target_encoder, model.encoder, model.predictor
    jx = {k: jax.numpy.asarray(v) for k, v in x.items()}

    @jax.jit
    def target(nt, images, targets):
        out, _ = te.stateless_call([], nt, images)
        return make_targets(out, targets, eps=model.target_eps, xp=ops)

    @jax.jit
    def context_fwd(t, nt, images, context):
        return enc.stateless_call(t, nt, images, indices=context)[0]

    @jax.jit
    def predictor_fwd(t, nt, tokens, context, targets):
        return pred.stateless_call(t, nt, tokens, context, targets)[0]

    def loss(t, nt, batch):
        y_pred, _ = model.stateless_call(t, nt, batch, training=False)
        return model.compute_loss(x=batch, y_pred=y_pred)

    forward = jax.jit(loss)
    forward_backward = jax.jit(jax.value_and_grad(loss))
    tv, ntv = values(model.trainable_variables), values(model.non_trainable_variables)
    opt_vars = values(model.optimizer.variables)
    grads = forward_backward(tv, ntv, jx)[1]
    optimizer = jax.jit(model.optimizer.stateless_apply)
    pairs = model._ema_pairs()
    targets_w, online_w = [t.value for t, _ in pairs], [o.value for _, o in pairs]
    ema = jax.jit(lambda ts, os_: [0.996 * a + 0.004 * b for a, b in zip(ts, os_)])
    tokens = context_fwd(
        values(enc.trainable_variables),
        values(enc.non_trainable_variables),
        jx["images"],
        jx["context"],
    )
    model.make_train_function()
    # Copies: the train function donates its state, the model keeps its own buffers.
    state = jax.tree.map(jax.numpy.copy, [tv, ntv, opt_vars, values(model.metrics_variables)])

    def train_step():
        outputs, new_state = model.train_function(tuple(state), iter([jx]))
        state[:] = list(new_state)
        return outputs

    te_nt = values(te.non_trainable_variables)
    enc_t, enc_nt = values(enc.trainable_variables), values(enc.non_trainable_variables)
    pred_t, pred_nt = values(pred.trainable_variables), values(pred.non_trainable_variables)
    parts = {
        "target": lambda: target(te_nt, jx["images"], jx["targets"]),
        "context_fwd": lambda: context_fwd(enc_t, enc_nt, jx["images"], jx["context"]),
        "predictor_fwd": lambda: predictor_fwd(
            pred_t, pred_nt, tokens, jx["context"], jx["targets"]
        ),
        "forward": lambda: forward(tv, ntv, jx),
        "forward_backward": lambda: forward_backward(tv, ntv, jx),
        "optimizer": lambda: optimizer(opt_vars, grads, tv),
        "ema": lambda: ema(targets_w, online_w),
        "train_step": train_step,
    }
    return parts, jax.block_until_ready


def torch_parts(model, x):
    import torch

    tx = {k: torch.as_tensor(v) for k, v in x.items()}
    te, enc, pred = model.target_encoder, model.encoder, model.predictor
    from keras import ops

    from jepa_components.context import make_targets

    def target():
        with torch.no_grad():
            return make_targets(
                te(tx["images"]), ops.cast(tx["targets"], "int32"), eps=model.target_eps, xp=ops
            )

    with torch.no_grad():
        tokens = enc(tx["images"], indices=tx["context"])
    tv = model.trainable_variables

    def forward():
        return model.compute_loss(x=tx, y_pred=model(tx, training=False))

    def forward_backward():
        loss = forward()
        loss.backward()
        grads = [v.value.grad for v in tv]
        for v in tv:
            v.value.grad = None
        return grads

    grads = [g.detach().clone() for g in forward_backward()]
    model.make_train_function()
    parts = {
        "target": target,
        "context_fwd": lambda: enc(tx["images"], indices=tx["context"]),
        "predictor_fwd": lambda: pred(tokens, tx["context"], tx["targets"]),
        "forward": forward,
        "forward_backward": forward_backward,
        "optimizer": lambda: model.optimizer.apply(grads, tv),
        "ema": lambda: model._blend_target(0.996),
        "train_step": lambda: model.train_function([tx]),
    }
    return parts, lambda out: None


def tensorflow_parts(model, x, jit_compile):
    import tensorflow as tf
    from keras import ops

    from jepa_components.context import make_targets

    tx = {k: tf.constant(v) for k, v in x.items()}
    te, enc, pred = model.target_encoder, model.encoder, model.predictor
    fn = lambda f: tf.function(f, jit_compile=jit_compile)  # noqa: E731
    tv = model.trainable_variables

    @fn
    def target():
        return make_targets(te(tx["images"]), tx["targets"], eps=model.target_eps, xp=ops)

    tokens = enc(tx["images"], indices=tx["context"])

    @fn
    def forward():
        return model.compute_loss(x=tx, y_pred=model(tx, training=False))

    @fn
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x=tx, y_pred=model(tx, training=False))
        return tape.gradient(loss, [v.value for v in tv])

    grads = [tf.identity(g) for g in forward_backward()]
    pairs = model._ema_pairs()

    @fn
    def ema():
        for t, o in pairs:
            t.assign(0.996 * t + 0.004 * o)
        return 0

    model.make_train_function()
    iterator = iter(tf.data.Dataset.from_tensors(tx).repeat())
    parts = {
        "target": target,
        "context_fwd": fn(lambda: enc(tx["images"], indices=tx["context"])),
        "predictor_fwd": fn(lambda: pred(tokens, tx["context"], tx["targets"])),
        "forward": forward,
        "forward_backward": forward_backward,
        "optimizer": fn(lambda: model.optimizer.apply(grads, tv)),
        "ema": ema,
        "train_step": lambda: model.train_function(iterator),
    }
    return parts, lambda out: tf.nest.map_structure(
        lambda t: t.numpy() if hasattr(t, "numpy") else t, out
    )


KERNEL_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[0-9]+)*")  # HLO names: ynn_fusion.12, copy


def xla_kind(name):
    """The kind of an XLA:CPU kernel from its trace name (``ynn_fusion.12``, ``copy.3``...)."""
    base = name.rsplit(".", 1)[0] if name.rsplit(".", 1)[-1].isdigit() else name
    if base.startswith(("ynn_fusion", "xnn_fusion")):
        return "dots, YNNPACK/XNNPACK fusions"
    if base.startswith("dot") or "_dot" in base:
        return "dots, XLA"
    if "copy" in base or "transpose" in base:
        return "copies and transposes"
    return "other fusions (elementwise, reductions)"


def xla_op_profile(fn, sync, steps):
    """Milliseconds per step of XLA:CPU's kernels by :func:`xla_kind`, traced over ``steps`` calls.

    Reads the Perfetto trace of ``jax.profiler``: its complete events named
    as HLO instructions (:data:`KERNEL_NAME`), on any thread (XLA runs small
    programs on the calling thread); the runtime's own events have other
    names. A kernel split over threads is one event per part, and kernels
    may run on both threads at once, so the sum can exceed the wall time.
    """
    import glob
    import gzip
    import tempfile

    import jax

    with tempfile.TemporaryDirectory() as folder:
        jax.profiler.start_trace(folder, create_perfetto_trace=True)
        start = time.perf_counter()
        for _ in range(steps):
            sync(fn())
        wall = (time.perf_counter() - start) / steps
        jax.profiler.stop_trace()
        (path,) = glob.glob(os.path.join(folder, "**", "perfetto_trace.json.gz"), recursive=True)
        with gzip.open(path) as f:
            trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    kinds, count = {}, 0
    for e in events:
        if e.get("ph") != "X" or not KERNEL_NAME.fullmatch(e.get("name", "")):
            continue
        kind = xla_kind(e["name"])
        kinds[kind] = kinds.get(kind, 0.0) + e["dur"] / 1e3 / steps
        count += 1
    return {"ms": kinds, "kernel_events_per_step": count / steps, "wall_ms": 1e3 * wall}


def profile_worker(args):
    bench.setup_threads(args)
    import torch

    torch.set_num_threads(args.threads or os.cpu_count())
    keras = bench.import_keras(args, args._backend)
    from _official import OfficialStep, official_components

    images, (context, targets) = bench.make_inputs(args)
    official = OfficialStep(**bench.official_kwargs(args))
    feed = bench.OfficialFeed(args, official, images)
    official_parts = official_components(official, *feed.next())
    model, ema = bench.build_keras(args, keras, 10**6)
    x = {"images": images, "context": context, "targets": targets}
    model.fit(x, batch_size=args.batch, epochs=1, verbose=0, callbacks=[ema])  # builds optimizer
    if args._backend == "jax":
        ours, sync = jax_parts(model, x)
    elif args._backend == "torch":
        ours, sync = torch_parts(model, x)
    else:
        ours, sync = tensorflow_parts(model, x, args.jit_compile == "true")
    torch_sync = lambda out: official.synchronize()  # noqa: E731
    times = {"ours": {}, "official": {}}
    for name, fn in ours.items():
        for _ in range(2):  # compile / warm up
            timed(fn, sync)
        off = official_parts.get(name if name != "train_step" else "step")
        if off is not None:
            timed(off, torch_sync)
        samples_o, samples_f = [], []
        for _ in range(args.reps):
            samples_o.append(timed(fn, sync))
            if off is not None:
                samples_f.append(timed(off, torch_sync))
        times["ours"][name] = np.median(np.asarray(samples_o), axis=0).tolist()
        if samples_f:
            key = name if name != "train_step" else "step"
            times["official"][key] = np.median(np.asarray(samples_f), axis=0).tolist()
    # A steady fit step, interleaved with official steps.
    fit_times = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = (time.perf_counter(), time.process_time())

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])
            if batch >= 2:
                fit_times.append(
                    (time.perf_counter() - self.start[0], time.process_time() - self.start[1])
                )
            official.timed_step(*feed.next())

    xs = {k: np.concatenate([v] * (args.reps + 2)) for k, v in x.items()}
    model.fit(
        xs, batch_size=args.batch, epochs=1, verbose=0, shuffle=False, callbacks=[ema, Timer()]
    )
    times["ours"]["fit"] = np.median(np.asarray(fit_times), axis=0).tolist()
    if args.xla_ops and args._backend == "jax":
        times["xla_ops"] = xla_op_profile(ours["train_step"], sync, args.reps)
    print(bench.RESULT + json.dumps(times), flush=True)


def _extra_options(p):
    p.add_argument("--reps", type=int, default=15, help="timed runs of every part")
    p.add_argument(
        "--xla-ops",
        action="store_true",
        help="jax: also sum XLA's CPU kernels of the train step by kind (jax.profiler)",
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = bench.parse_args(
        argv,
        description=__doc__.splitlines()[0],
        extra=_extra_options,
    )
    if args.sampler:
        raise SystemExit("profile_train_step.py needs fixed masks (--masks KC/MxKT)")
    if args.xla_ops and "jax" not in args.backends.split(","):
        raise SystemExit(f"--xla-ops traces XLA on jax: --backends {args.backends!r} has no jax")
    if args._worker == "profile":
        return profile_worker(args)
    print(bench.describe(args), flush=True)
    out = {}
    for backend in [b for b in args.backends.split(",") if b]:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            *argv,
            "--_worker",
            "profile",
            "--_backend",
            backend,
        ]
        proc = subprocess.run(cmd, env=bench.worker_env(args), capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(bench.RESULT)]
        if not lines:
            print(f"[{backend}] ERROR\n" + "\n".join(proc.stderr.splitlines()[-15:]))
            continue
        res = out[backend] = json.loads(lines[0][len(bench.RESULT) :])
        print(f"\n[{backend}] part               ours wall / CPU ms   official wall / CPU ms")
        for name in PARTS:
            o = res["ours"].get(name)
            f = res["official"].get(name if name != "train_step" else "step")
            cell = lambda v: f"{1e3 * v[0]:8.1f} / {1e3 * v[1]:7.1f}" if v else " " * 18  # noqa
            print(f"  {name:20s} {cell(o)}   {cell(f)}")
        ops = res.get("xla_ops")
        if ops:
            print(
                f"  XLA kernels of the train step: {ops['kernel_events_per_step']:.0f} events "
                "per step, "
                f"{sum(ops['ms'].values()):.1f} ms summed over threads, step "
                f"{ops['wall_ms']:.1f} ms wall"
            )
            for kind, ms in sorted(ops["ms"].items(), key=lambda item: -item[1]):
                print(f"    {kind:42s} {ms:8.1f} ms")
    return out


if __name__ == "__main__":
    main()
