"""The text a student is distilled on: local files, a Hub dataset, or samples of the teacher itself.

Without a corpus, a causal teacher writes its own (sequence-level distillation, Kim & Rush
2016): seeded ancestral sampling (temperature 1, no top-k/top-p) of N sequences from the
BOS token, each cut after its first EOS. Nothing then needs the network.

Whatever the source, the token ids are saved once in the output folder (corpus/train.jsonl,
corpus/heldout.jsonl, one {"input_ids", "text"} per line) and reused from there, so a
resumed run trains on exactly the sequences the interrupted one did, and held-out samples
stay available for measuring the student afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

from lm_eval_bias.distillation.loss import IGNORE_INDEX

TEXT_SUFFIXES = {".txt", ".text", ".md", ".jsonl", ".json"}


@dataclass
class Corpus:
    train: list[list[int]]
    heldout: list[list[int]]
    source: str


# ------------------------------------------------------------------ reading


def texts_from_files(paths: Sequence[str]) -> list[str]:
    """One text per non-blank line; .jsonl files give each record's "text"; a folder gives its text files."""
    texts: list[str] = []
    for name in paths:
        path = Path(name)
        files = sorted(p for p in path.rglob("*") if p.suffix in TEXT_SUFFIXES) if path.is_dir() else [path]
        for file in files:
            with file.open(encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    if file.suffix in (".jsonl", ".json"):
                        record = json.loads(line)
                        if "text" not in record:
                            raise ValueError(
                                f"{file}, line {number}: a .jsonl corpus needs a 'text' field in every record"
                            )
                        line = record["text"]
                    texts.append(line.rstrip("\n"))
    if not texts:
        raise ValueError(f"the corpus {list(paths)} holds no text")
    return texts


def texts_from_hub(dataset_id: str, *, name: str | None, split: str, column: str, limit: int | None) -> list[str]:
    import datasets

    try:
        data = datasets.load_dataset(dataset_id, name, split=split)
    except Exception as error:  # noqa: BLE001 - offline, a wrong id, ...: one clear message
        raise ValueError(
            f"could not load the corpus dataset {dataset_id!r} (split {split!r}): {error}. "
            "Give local text files, or no --corpus to let the teacher generate one."
        ) from error
    if column not in data.column_names:
        raise ValueError(
            f"dataset {dataset_id!r} has no column {column!r}; it has {data.column_names} (see --text-column)"
        )
    texts = [t for t in data[column] if isinstance(t, str) and t.strip()]
    return texts[:limit] if limit else texts


def tokenize(texts: Sequence[str], tokenizer, max_length: int) -> list[list[int]]:
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return [list(ids) for ids in encoded if len(ids) >= 2]


# --------------------------------------------------------------- generating


@torch.no_grad()
def generate_sequences(
    model, tokenizer, *, count: int, max_length: int, batch_size: int, seed: int, progress: bool = True
) -> list[list[int]]:
    """count sequences of at most max_length tokens (BOS included), sampled from the model."""
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if start is None:
        raise ValueError("the teacher's tokenizer has neither a BOS nor an EOS token to start samples from")
    stops = _eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else next(iter(stops), start)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    transformers.set_seed(seed)
    sequences: list[list[int]] = []
    batches = range(0, count, batch_size)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="teacher samples", unit="batch")
    for first in batches:
        n = min(batch_size, count - first)
        prompt = torch.full((n, 1), start, dtype=torch.long, device=device)
        out = model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=max_length - 1,
            pad_token_id=pad,
        )
        for row in out.tolist():
            cut = next((i + 1 for i, token in enumerate(row) if i > 0 and token in stops), len(row))
            sequences.append(row[:cut])
    model.train(was_training)
    return sequences


def _eos_ids(model, tokenizer) -> set[int]:
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


# ------------------------------------------------------------------ storing


def save_jsonl(path: Path, sequences: Sequence[Sequence[int]], tokenizer) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for ids in sequences:
            f.write(json.dumps({"input_ids": list(ids), "text": tokenizer.decode(ids)}, ensure_ascii=False) + "\n")
    tmp.replace(path)  # a run killed while writing leaves no half corpus behind


def load_jsonl(path: Path) -> list[list[int]]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line)["input_ids"] for line in f if line.strip()]


def prepare_corpus(
    folder: Path,
    teacher,
    tokenizer,
    *,
    masked: bool,
    corpus: Sequence[str] = (),
    num_samples: int | None,
    heldout: int,
    max_length: int,
    seed: int,
    generate_batch_size: int = 16,
    hub_name: str | None = None,
    hub_split: str = "train",
    text_column: str = "text",
    progress: bool = True,
) -> Corpus:
    """The corpus in folder/corpus/, built on first use."""
    train_file, heldout_file, about = folder / "train.jsonl", folder / "heldout.jsonl", folder / "source.json"
    settings = {
        "corpus": list(corpus),
        "num_samples": num_samples,
        "heldout": heldout,
        "max_length": max_length,
        "seed": seed,
        "hub_name": hub_name,
        "hub_split": hub_split,
        "text_column": text_column,
    }
    if train_file.exists() and heldout_file.exists() and about.exists():
        saved = json.loads(about.read_text(encoding="utf-8"))
        if saved.get("settings") != settings:
            changed = sorted(k for k in settings if saved.get("settings", {}).get(k) != settings[k])
            raise ValueError(
                f"{folder} holds a corpus made with other settings ({', '.join(changed)}); "
                "use another --output, or the same settings to reuse it"
            )
        return Corpus(load_jsonl(train_file), load_jsonl(heldout_file), saved["source"])
    total = None if num_samples is None else num_samples + heldout
    if corpus:
        local = [c for c in corpus if Path(c).exists()]
        if local and len(local) != len(corpus):
            missing = sorted(set(corpus) - set(local))
            raise FileNotFoundError(f"corpus files not found: {missing}")
        if local:
            texts, source = texts_from_files(local), f"files {[str(Path(c).resolve()) for c in local]}"
        elif len(corpus) == 1:
            texts = texts_from_hub(corpus[0], name=hub_name, split=hub_split, column=text_column, limit=total)
            source = f"dataset {corpus[0]} ({hub_name or 'default'}, {hub_split}, column {text_column})"
        else:
            raise ValueError(f"--corpus takes local files or one Hub dataset id; {list(corpus)} are neither")
        sequences = tokenize(texts[:total] if total else texts, tokenizer, max_length)
    else:
        if masked:
            raise ValueError(
                "a masked-LM teacher cannot write its own corpus; give --corpus (text files or a Hub dataset)"
            )
        if total is None:
            raise ValueError("a corpus the teacher writes needs a size: give --num-samples N (or a --corpus)")
        count = total
        sequences = generate_sequences(
            teacher,
            tokenizer,
            count=count,
            max_length=max_length,
            batch_size=generate_batch_size,
            seed=seed,
            progress=progress,
        )
        source = f"teacher samples: {count} sequences, <= {max_length} tokens, seed {seed}, temperature 1"
    if len(sequences) <= heldout:
        raise ValueError(f"the corpus has {len(sequences)} sequences, not more than the {heldout} held out")
    train, held = sequences[: len(sequences) - heldout], sequences[len(sequences) - heldout :]
    save_jsonl(train_file, train, tokenizer)
    save_jsonl(heldout_file, held, tokenizer)
    about.write_text(
        json.dumps({"source": source, "train": len(train), "heldout": len(held), "settings": settings}, indent=1),
        encoding="utf-8",
    )
    return Corpus(train, held, source)


# ---------------------------------------------------------------- batching


class TokenDataset(torch.utils.data.Dataset):
    def __init__(self, sequences: Sequence[Sequence[int]]) -> None:
        self.sequences = sequences

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": list(self.sequences[index])}


class CausalCollator:
    """Right-pads a batch; padding gets attention 0 and label -100, every real token (EOS too) is a label."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            ids[row, :n] = torch.tensor(feature["input_ids"], dtype=torch.long)
            mask[row, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, IGNORE_INDEX)}


def collator(tokenizer, *, masked: bool, mlm_probability: float = 0.15):
    if masked:
        if tokenizer.mask_token is None:
            raise ValueError("a masked-LM student needs a tokenizer with a mask token")
        return transformers.DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=mlm_probability)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return CausalCollator(pad)
