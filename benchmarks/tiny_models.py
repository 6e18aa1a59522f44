"""Write small random models for the benchmarks' tiny-model runs (no network needed).

    LM_EVAL_BIAS_DATA_DIR=../shared/data python benchmarks/tiny_models.py OUT_DIR

OUT_DIR/tiny-gpt-neox: GPTNeoXForCausalLM (hidden 64, 2 layers) with a byte-level BPE trained on the
CrowS-Pairs sentences; OUT_DIR/tiny-bert: BertForMaskedLM (hidden 64, 2 layers) with a WordPiece
trained on them; with --bert-base also OUT_DIR/bert-base-random, BERT-base's shape (hidden 768,
12 layers, 12 heads, inner 3072) for the masked roofline figure; with --random-copy-of DIR also
OUT_DIR/<DIR's name>-random, DIR's causal LM config and tokenizer with random weights (for a machine
the weights cannot be copied to, e.g. a GPU run of Gemma-3-270M's shapes). Random weights: for speed and
memory figures only, not for bias numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    PreTrainedTokenizerFast,
)

from lm_eval_bias.data.sources import benchmark_file

HIDDEN, LAYERS, HEADS, POSITIONS = 64, 2, 4, 512


def crows_pairs_sentences() -> list[str]:
    frame = pd.read_csv(benchmark_file("crows_pairs"))
    return [*frame["sent_more"], *frame["sent_less"]]


def gpt_neox(sentences: list[str], folder: Path) -> None:
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        sentences,
        trainers.BpeTrainer(
            vocab_size=4000,
            special_tokens=["<|endoftext|>", "<|padding|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<|padding|>"
    )
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=4 * HIDDEN,
        max_position_embeddings=POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def bert(sentences: list[str], folder: Path, hidden: int = HIDDEN, layers: int = LAYERS, heads: int = HEADS) -> None:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.decoder = decoders.WordPiece()
    wordpiece.train_from_iterator(sentences, trainers.WordPieceTrainer(vocab_size=4000, special_tokens=specials))
    cls, sep = wordpiece.token_to_id("[CLS]"), wordpiece.token_to_id("[SEP]")
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=wordpiece,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        max_position_embeddings=POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def random_copy(source: Path, folder: Path) -> None:
    """source's causal LM config and tokenizer, fp32 weights drawn by the model's own initialisation (seed 0)."""
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(source), dtype=torch.float32).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--bert-base", action="store_true", help="also a random BERT-base-shaped model")
    parser.add_argument(
        "--random-copy-of",
        type=Path,
        metavar="DIR",
        help="also DIR's causal LM (config and tokenizer) with random weights",
    )
    args = parser.parse_args()
    out_dir, sentences = args.out_dir, crows_pairs_sentences()
    gpt_neox(sentences, out_dir / "tiny-gpt-neox")
    bert(sentences, out_dir / "tiny-bert")
    written = [out_dir / "tiny-gpt-neox", out_dir / "tiny-bert"]
    if args.bert_base:
        bert(sentences, out_dir / "bert-base-random", hidden=768, layers=12, heads=12)
        written.append(out_dir / "bert-base-random")
    if args.random_copy_of:
        written.append(out_dir / f"{args.random_copy_of.resolve().name}-random")
        random_copy(args.random_copy_of, written[-1])
    print("wrote " + ", ".join(map(str, written)))


if __name__ == "__main__":
    main()
