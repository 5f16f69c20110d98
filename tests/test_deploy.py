"""Deployment runtimes: ONNX export and ONNX Runtime (fp32 equal to PyTorch), int8 dynamic quantization (bytes down,
matrix products the same), timing in turns, the int8 upstream, the profile command's --runtime / --dtype, and the
GPU path failing clearly without CUDA."""

from __future__ import annotations

import collections
import dataclasses
from pathlib import Path

import onnx
import pytest
import torch

from compress_lib.checkpoint import save_checkpoint
from compress_lib.config import config_for_preset
from compress_lib.efficiency import deploy
from compress_lib.efficiency.runtime import check_dtype, interleaved_real_time_factors
from compress_lib.errors import CompressLibError
from compress_lib.model import MelHuBERT

ROOT = Path(__file__).resolve().parents[1]


def melhubert(preset: str = "smoke", frame_ms: int = 20, seed: int = 0, **sizes) -> MelHuBERT:
    torch.manual_seed(seed)
    cfg = config_for_preset(preset, frame_ms)
    return MelHuBERT(dataclasses.replace(cfg, **sizes) if sizes else cfg).eval()


@pytest.fixture(scope="module")
def pruned_model():
    """A smoke MelHuBERT at 10 ms whose layers lost heads and FFN units, one layer with none of either."""
    return melhubert("smoke", 10, layer_heads=[2, 0, 1, 2], layer_ffn_dims=[64, 3, 0, 64])


@pytest.fixture(scope="module")
def pruned_encoders(pruned_model, tmp_path_factory):
    """ORT encoders of `pruned_model` (each export takes seconds, so a module makes two): its first 3 layers,
    and all 4 layers with a padding-mask input."""
    folder = tmp_path_factory.mktemp("onnx")
    return {"first3": deploy.deployed_models(pruned_model, folder, 3, ("onnxruntime",), name="a")["onnxruntime"],
            "masked": deploy.deployed_models(pruned_model, folder, None, ("onnxruntime",), name="b",
                                             padding_mask=True)["onnxruntime"]}


def matrix_products(path) -> collections.Counter:
    ops = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    return collections.Counter({k: v for k, v in ops.items() if k.startswith("MatMul")})


def test_onnx_runtime_computes_pytorchs_hidden_states_for_any_length_and_truncation(pruned_model, pruned_encoders):
    for encoder, layers in ((pruned_encoders["first3"], 3), (pruned_encoders["masked"], 4)):
        assert encoder.num_layers == layers
        for seconds, batch in ((0.37, 1), (2.0, 3)):  # neither is the traced length (1 s, batch 2)
            assert deploy.max_abs_difference(pruned_model, encoder, seconds, batch) <= deploy.ORT_TOLERANCE
        hidden = encoder(torch.randn(1, 50, 40)).hidden_states  # 10 ms: 40 log-Mel bins per frame
        assert len(hidden) == layers + 1 and hidden[-1].shape == (1, 50, 32)


def test_a_padded_batch_gives_each_utterance_its_own_hidden_states(pruned_model, pruned_encoders):
    x = torch.randn(2, 70, 40)
    mask = torch.zeros(2, 70, dtype=torch.bool)
    mask[0, 40:] = True
    with torch.inference_mode():
        expected = pruned_model(x, padding_mask=mask, compute_logits=False).hidden_states
    got = pruned_encoders["masked"](x, padding_mask=mask).hidden_states
    for e, g in zip(expected, got):
        assert torch.allclose(e[~mask], g[~mask], atol=1e-4)


def test_ort_encoder_refuses_what_its_export_cannot_do(pruned_model, pruned_encoders, tmp_path):
    encoder = pruned_encoders["first3"]
    x, mask = torch.randn(2, 30, 40), torch.zeros(2, 30, dtype=torch.bool)
    mask[1, 20:] = True
    with pytest.raises(CompressLibError, match="runs 3 layers"):
        encoder(x, num_layers=2)
    with pytest.raises(CompressLibError, match="exported without a padding mask"):
        encoder(x, padding_mask=mask)
    with pytest.raises(CompressLibError, match="hidden states only"):
        encoder(x, compute_logits=True)
    with pytest.raises(CompressLibError, match="does not exist"):
        deploy.ort_session(tmp_path / "missing.onnx")
    with pytest.raises(CompressLibError, match="num_layers must be in 0..4"):
        deploy.export_onnx(pruned_model, tmp_path / "x.onnx", num_layers=5)
    with pytest.raises(CompressLibError, match="unknown runtime 'tensorrt'"):
        deploy.deployed_models(pruned_model, tmp_path, None, ("tensorrt",))


def test_int8_shrinks_the_file_and_keeps_every_matrix_product(tmp_path):
    model = melhubert("study", 20)
    encoders = deploy.deployed_models(model, tmp_path, None, ("onnxruntime", "onnxruntime-int8"))
    fp32, int8 = (deploy.file_bytes(encoders[r]) for r in ("onnxruntime", "onnxruntime-int8"))
    assert fp32 >= deploy.model_bytes(model) and int8 < 0.4 * fp32  # 4 bytes per weight -> 1 (+ float32 rest)
    products32, products8 = matrix_products(tmp_path / "model.onnx"), matrix_products(tmp_path / "model.int8.onnx")
    linear_layers = 1 + 6 * model.cfg.num_layers  # the input projection, q k v out fc1 fc2 of each layer
    assert products8["MatMulInteger"] == linear_layers  # every weight's product now in int8 ...
    assert sum(products8.values()) == sum(products32.values())  # ... and no product removed (attention stays fp32)
    with torch.inference_mode():
        reference = model(torch.ones(1, 60, 80), compute_logits=False).hidden_states[-1]
    got = encoders["onnxruntime-int8"](torch.ones(1, 60, 80)).hidden_states[-1]
    assert torch.nn.functional.cosine_similarity(reference.flatten(), got.flatten(), dim=0) > 0.99


def test_model_bytes_count_the_inference_path_in_memory():
    model = melhubert("smoke", 20)
    assert deploy.model_bytes(model) == 4 * model.num_parameters()  # float32, the cluster head left out
    assert deploy.model_bytes(model, 0) < deploy.model_bytes(model, 2) < deploy.model_bytes(model)
    assert deploy.model_bytes(model.half()) == 2 * model.num_parameters()


def test_runtimes_are_timed_in_turns_with_one_row_per_model_and_runtime(tmp_path):
    models = [(melhubert("smoke", 20), None), (melhubert("smoke", 10), 1)]
    rows = deploy.runtime_real_time_factors(models, tmp_path, seconds=0.5, repeats=2, warmup=1)
    assert [(r["index"], r["runtime"]) for r in rows] == [(i, r) for i in (0, 1) for r in deploy.RUNTIMES]
    for r in rows:
        assert len(r["times_s"]) == 2 and r["median"] > 0 and r["threads"] == 1
        assert (r["ratio_to_eager"] == 1.0) if r["runtime"] == "eager" else r["ratio_to_eager"] > 0
        assert (r["file_bytes"] is None) == (r["runtime"] == "eager")
        assert (r["max_abs_difference"] is not None) == (r["runtime"] == "onnxruntime")
    with pytest.raises(CompressLibError, match="threads must be >= 1"):
        deploy.runtime_real_time_factors(models, tmp_path, threads=0)


def test_int8_upstream_is_keyed_by_its_checkpoint_and_runtime_and_encodes_like_the_model(tmp_path):
    import onnxruntime

    from compress_lib.downstream.upstream import load_upstream

    path = tmp_path / "model.pt"
    save_checkpoint(path, melhubert("smoke", 20), num_layers=3)
    base, int8 = load_upstream(str(path)), load_upstream(f"int8:{path}")
    assert int8.method == "int8" and int8.name == f"{base.name} (int8)" and int8.num_layers == 3
    assert int8.key == f"int8-ort{onnxruntime.__version__}-{base.key}"
    feats = [torch.randn(n, 80) for n in (50, 23, 71)]
    expected, got = dict(base.encode(feats)), dict(int8.encode(feats))
    for i in expected:
        assert got[i].shape == expected[i].shape == (4, feats[i].shape[0], 32)
    (cached,) = (tmp_path / ".cache").glob("int8.*.onnx")  # exported once, beside the checkpoint ...
    written = cached.stat().st_mtime_ns
    assert load_upstream(f"int8:{path}").key == int8.key and cached.stat().st_mtime_ns == written  # ... and reused
    with pytest.raises(CompressLibError, match="int8 evaluation takes a compress_lib checkpoint"):
        load_upstream("int8:distilhubert")


def test_half_precision_is_for_a_gpu_and_the_gpu_path_says_so_clearly(capsys):
    assert check_dtype("float32", "cpu") == torch.float32
    with pytest.raises(CompressLibError, match="bfloat16 is timed on a GPU only"):
        check_dtype("bfloat16", "cpu")
    with pytest.raises(CompressLibError, match="unknown dtype 'int4'"):
        check_dtype("int4", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(CompressLibError, match="CUDA is not available"):
            interleaved_real_time_factors([(melhubert(), None)], seconds=0.2, device="cuda", dtype="float16")
        benchmark = load_benchmark()
        assert benchmark.main(["--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert "CUDA is not available" in err and err.count("\n") == 1  # one line, no traceback
        assert benchmark.main(["--dtypes", "float16"]) == 2 and "GPU only" in capsys.readouterr().err


def load_benchmark():
    """benchmarks/efficiency.py as a module (it is a script, not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("efficiency_benchmark", ROOT / "benchmarks" / "efficiency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_profile_command_times_a_runtime_beside_eager_and_refuses_mixed_flags(capsys):
    from compress_lib.cli import main

    assert main(["profile", "melhubert", "--preset", "smoke", "--runtime", "onnxruntime-int8", "--seconds", "0.5",
                 "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "runtime            onnxruntime-int8 (ONNX file " in out and "x eager" in out and "model_bytes" in out
    assert main(["profile", "melhubert", "--runtime", "onnxruntime", "--device", "cuda"]) == 2
    assert "--runtime onnxruntime is timed on the CPU in float32" in capsys.readouterr().err
    assert main(["profile", "melhubert", "--preset", "smoke", "--dtype", "float16"]) == 2
    assert "float16 is timed on a GPU only" in capsys.readouterr().err


@pytest.mark.slow
def test_onnx_runtime_equals_pytorch_on_the_paper_size_model(tmp_path):
    model = melhubert("paper", 20)
    encoder = deploy.deployed_models(model, tmp_path, None, ("onnxruntime",))["onnxruntime"]
    assert deploy.max_abs_difference(model, encoder, seconds=1.7) <= deploy.ORT_TOLERANCE  # 12 layers deep
