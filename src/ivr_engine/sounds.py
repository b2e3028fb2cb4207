"""Rendering the prompt texts (the package's ``prompt_texts/{lang}.txt``) into audio files
that Asterisk plays as-is.

For each language and prompt: espeak-ng speaks the text, sox makes it 8 kHz mono and writes

    out/{lang}/{prefix}/{name}.ulaw   raw G.711 mu-law  (Asterisk's format_pcm: .ulaw/.pcm)
    out/{lang}/{prefix}/{name}.alaw   raw G.711 A-law   (format_pcm: .alaw)
    out/{lang}/{prefix}/{name}.wav    8 kHz 16-bit mono, for people to listen to

so a ulaw or alaw channel plays its own codec with no transcoding. ``out/.manifest.json``
keeps a hash of what each prompt was made from (text, voice, recipe): a prompt whose hash
is unchanged and whose files exist is not rendered again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

from ivr_engine.errors import IvrError, SoundRenderError
from ivr_engine.prompts import DEFAULT_PREFIX, LANGUAGES, Prompt, load_texts, shipped_texts

VOICES: dict[str, str] = {"en": "en", "it": "it"}
WORDS_PER_MINUTE = 150  # espeak-ng's 175 is hurried on a phone line
SAMPLE_RATE = 8000
# Bump when the pipeline below changes, so that every prompt is rendered again.
RECIPE = "espeak-ng|sox rate 8000, gain -n -3, no dither|v1"
EXTENSIONS: tuple[str, ...] = ("ulaw", "alaw", "wav")
MANIFEST = ".manifest.json"
STEP_TIMEOUT = 60.0  # seconds for one espeak-ng or sox run

_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True)
class _Job:
    lang: str
    prompt: Prompt
    text: str
    voice: str
    prefix: str
    target_dir: Path

    @property
    def key(self) -> str:
        return f"{self.lang}/{self.prefix}/{self.prompt.value}"

    @property
    def digest(self) -> str:
        made_of = {"text": self.text, "voice": self.voice, "wpm": WORDS_PER_MINUTE}
        blob = json.dumps({**made_of, "recipe": RECIPE}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def outputs(self) -> list[Path]:
        return [self.target_dir / f"{self.prompt.value}.{ext}" for ext in EXTENSIONS]


def repo_root() -> Path | None:
    """The checkout the package runs from (an editable install), else None."""
    candidate = Path(__file__).resolve().parents[2]
    if (candidate / "pyproject.toml").is_file() and (candidate / "src" / "ivr_engine").is_dir():
        return candidate
    return None


def render(
    src: Path | Traversable,
    out: Path,
    prefix: str = DEFAULT_PREFIX,
    languages: tuple[str, ...] = LANGUAGES,
) -> list[Path]:
    """Render every prompt of every language; returns the files written by this run."""
    if not _PREFIX.match(prefix):
        raise SoundRenderError(f"invalid sound prefix {prefix!r}")
    texts = load_texts(src, languages)
    manifest = _read_manifest(out)
    jobs = [
        _Job(lang, prompt, text, VOICES.get(lang, lang), prefix, out / lang / prefix)
        for lang, by_prompt in texts.items()
        for prompt, text in by_prompt.items()
    ]
    todo = [job for job in jobs if not _is_fresh(job, manifest)]
    if not todo:
        return []
    _require_tools()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    written: list[Path] = []
    failures: list[str] = []
    try:
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            futures = {pool.submit(_render_one, job, staging): job for job in todo}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    written += future.result()
                except SoundRenderError as err:
                    failures.append(f"{job.key}: {err}")
                else:
                    manifest[job.key] = job.digest
    finally:
        _write_manifest(out, manifest)
        shutil.rmtree(staging, ignore_errors=True)
    if failures:
        raise SoundRenderError("rendering failed:\n  " + "\n  ".join(sorted(failures)))
    return sorted(written)


def _is_fresh(job: _Job, manifest: dict[str, str]) -> bool:
    if manifest.get(job.key) != job.digest:
        return False
    return all(path.is_file() and path.stat().st_size > 0 for path in job.outputs())


def _render_one(job: _Job, staging: Path) -> list[Path]:
    base = staging / f"{job.lang}-{job.prompt.value}"
    spoken = base.with_suffix(".espeak.wav")
    _run(
        ["espeak-ng", "-v", job.voice, "-s", str(WORDS_PER_MINUTE), "-w", str(spoken), "--stdin"],
        stdin=job.text,
    )
    ulaw, alaw, wav = (base.with_suffix(f".{ext}") for ext in EXTENSIONS)
    to_8k = ["rate", str(SAMPLE_RATE), "gain", "-n", "-3"]
    _run(
        ["sox", "-V1", str(spoken), "-c", "1", "-b", "16", "-e", "signed-integer", str(wav), *to_8k]
    )
    # No dither: it would turn the silences into hiss once companded to 8 bits.
    _run(["sox", "-V1", "-D", str(wav), "-t", "ul", str(ulaw)])
    _run(["sox", "-V1", "-D", str(wav), "-t", "al", str(alaw)])
    job.target_dir.mkdir(parents=True, exist_ok=True)
    finals: list[Path] = []
    for made, final in zip((ulaw, alaw, wav), job.outputs(), strict=True):
        os.replace(made, final)
        finals.append(final)
    return finals


def _run(argv: list[str], stdin: str | None = None) -> None:
    try:
        subprocess.run(
            argv,
            input=stdin.encode() if stdin is not None else None,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=STEP_TIMEOUT,
            check=True,
        )
    except subprocess.TimeoutExpired as err:
        raise SoundRenderError(f"{argv[0]} took more than {STEP_TIMEOUT:.0f} s") from err
    except subprocess.CalledProcessError as err:
        tail = err.stderr.decode(errors="replace").strip()[-500:]
        raise SoundRenderError(f"{argv[0]} exited with {err.returncode}: {tail}") from err
    except OSError as err:
        raise SoundRenderError(f"cannot run {argv[0]}: {err}") from err


def _require_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise SoundRenderError(
            f"{' and '.join(missing)} not found on PATH: install the Debian packages "
            "espeak-ng and sox (`make system-deps`)"
        )


def _read_manifest(out: Path) -> dict[str, str]:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no manifest, or a broken one: everything is rendered again
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        return {}
    return {str(k): str(v) for k, v in entries.items()}


def _write_manifest(out: Path, manifest: dict[str, str]) -> None:
    if not out.is_dir():
        return
    tmp = out / f"{MANIFEST}.tmp"
    body = {"recipe": RECIPE, "entries": dict(sorted(manifest.items()))}
    tmp.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out / MANIFEST)


def render_cli(src: Path | None, out: Path | None, prefix: str = DEFAULT_PREFIX) -> None:
    """``ivr-engine sounds render [--src DIR] [--out build/sounds]``: render the shipped texts
    (or those of ``--src``) into ``build/sounds`` of the checkout, else of the working
    directory; print a summary."""
    if out is None:
        out = (repo_root() or Path.cwd()) / "build" / "sounds"
    written = render(src if src is not None else shipped_texts(), out, prefix)
    rendered = len(written) // len(EXTENSIONS)
    total = len(LANGUAGES) * len(Prompt)
    print(f"sounds: {rendered} prompt(s) rendered, {total - rendered} unchanged, in {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr_engine.sounds", description=__doc__)
    parser.add_argument("--src", type=Path, default=None, help="folder of {lang}.txt")
    parser.add_argument("--out", type=Path, default=None, help="folder to render into")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="sound folder per language")
    args = parser.parse_args(argv)
    try:
        render_cli(args.src, args.out, args.prefix)
    except IvrError as err:
        print(f"ivr-engine: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
