"""Generate text from an exported language model with numpy and onnxruntime alone.

    rnnkit export runs/shk --format onnx --out shk-onnx
    python examples/onnx_sample.py shk-onnx --prime "ROMEO:" --length 200

prints what ``rnnkit sample runs/shk --prime "ROMEO:" --length 200 --argmax`` prints: the
prime, then each next token the most likely one. No torch and no rnnkit: the vocabulary and
the state's shapes come from ``export.json``, the model is ``step.onnx``, a step
``(tokens, state) -> (logits, state)`` whose state this loop carries.
"""

from __future__ import annotations

import argparse
import codecs
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort


def load(folder: Path):
    """The step model's session, its graph description and the vocabulary from export.json."""
    manifest = json.loads((folder / "export.json").read_text(encoding="utf-8"))
    if manifest["task"] != "lm":
        sys.exit(f"{folder} holds a {manifest['task']} export; this example reads an lm one")
    if manifest["vocabulary"]["kind"] == "word":
        sys.exit(f"{folder} holds a word language model; this example reads char and byte ones")
    step = next(g for g in manifest["graphs"] if g["name"] == "step")
    session = ort.InferenceSession(str(folder / step["file"]), providers=["CPUExecutionProvider"])
    return session, step, manifest["vocabulary"]


def encode(text: str, vocabulary: dict) -> list[int]:
    """Text to ids as rnnkit reads it: UTF-8 bytes, or characters (unknown ones as U+FFFD)."""
    if vocabulary["kind"] == "byte":
        return list(text.encode("utf-8"))
    index = {s: i for i, s in enumerate(vocabulary["tokens"])}
    unknown = index[vocabulary["unknown"]]
    return [index.get(ch, unknown) for ch in text]


def generate(folder: Path, prime: str, length: int, write=sys.stdout.write) -> str:
    """Write ``prime`` then ``length`` greedy tokens; return the generated text."""
    session, step, vocabulary = load(folder)
    state_in = step["inputs"][1:]  # tokens first, then h (and c)
    # the zero state, batch 1: every state input's shape with its dynamic axis ("batch") as 1
    state = [
        np.zeros([1 if isinstance(n, str) else n for n in t["shape"]], np.float32) for t in state_in
    ]
    names = [t["name"] for t in state_in]

    def run(token: int) -> np.ndarray:
        nonlocal state
        feeds = {"tokens": np.array([token], np.int64), **dict(zip(names, state))}
        logits, *state = session.run(None, feeds)
        return logits[0]

    ids = encode(prime or "\n", vocabulary)
    if not ids:
        raise SystemExit("the prime encodes to no tokens")
    for token in ids[:-1]:  # the prime but its last token: the state that reads it
        run(token)
    token = ids[-1]
    byte = vocabulary["kind"] == "byte"
    decoder = codecs.getincrementaldecoder("utf-8")("replace") if byte else None
    pieces = []
    write(prime)
    for _ in range(length):
        token = int(np.argmax(run(token)))
        piece = decoder.decode(bytes([token])) if byte else vocabulary["tokens"][token]
        pieces.append(piece)
        write(piece)
    if decoder is not None:
        pieces.append(decoder.decode(b"", final=True))
        write(pieces[-1])
    write("\n")
    return "".join(pieces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an `rnnkit export --format onnx` folder")
    parser.add_argument("--prime", default="", help="text to start from (default: a newline)")
    parser.add_argument("--length", type=int, default=500, help="tokens to generate")
    args = parser.parse_args()
    generate(args.folder, args.prime, args.length)


if __name__ == "__main__":
    main()
