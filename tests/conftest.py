"""Shared fixtures: tiny random models with trained tokenizers, and a hand-written CrowS-Pairs CSV.

Every model is built from a fixed seed, in float32, and saved as an ordinary Hugging Face folder
(config + weights + tokenizer) so that it loads with ``from_pretrained(folder)`` exactly like a
Hub checkpoint, with no newly initialised weights. Each tokenizer is trained on the sentences
below (which include every sentence of the fixture CSV), so the words the tests use are real
vocabulary items rather than byte fallbacks or [UNK].
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:  # the package is normally pip install -e'd; fall back to the source tree
    import lm_eval_bias  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    GPTNeoXConfig,
    GPTNeoXForCausalLM,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForMaskedLM,
)

from fixtures.corpus import (  # noqa: E402
    CORPUS,
    CROWS_PAIRS_HEADER,
    CROWS_PAIRS_ROWS,
    ENDOFTEXT,
    MAX_POSITIONS,
    NEOX_PAD,
    SEED,
)

GEMMA2_SOFTCAP = 0.3  # random-init logits reach ~0.4: a cap this small bends every log-probability
from fixtures.bbq import write_bbq  # noqa: E402
from fixtures.harness import our_tasks  # noqa: E402
from fixtures.holistic_bias import write_holistic_bias  # noqa: E402
from fixtures.stereoset_seat import write_seat, write_stereoset_jsonl  # noqa: E402

# ------------------------------------------------------------------ markers

FOLDER_MARKERS = {"unit": "unit", "harness": "harness", "integration": "integration"}


def pytest_collection_modifyitems(config, items):
    """Mark each test by its folder (tests/unit, tests/harness, tests/integration), so that
    ``pytest -m "not integration"`` is the quick loop; a test outside them is left unmarked."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in FOLDER_MARKERS:
            item.add_marker(FOLDER_MARKERS[folder])


@pytest.fixture(autouse=True)
def batches_as_named(monkeypatch, request):
    """Scorers batch by the batch_size a test names: no CPU token floor (scoring/batching.py), which
    would otherwise put every tiny test sentence in one batch and make batch-size comparisons moot.
    tests/unit/test_batching.py tests the floor itself, and scores with it against the reference.
    A test marked `cpu_token_floor` keeps the floor: one that compares this process's scores with
    another process's (a Ray worker), which this patch does not reach."""
    import lm_eval_bias.scoring.batching as batching

    if request.node.get_closest_marker("cpu_token_floor") is None:
        monkeypatch.setattr(batching, "CPU_MIN_TOKENS", 0)


# ------------------------------------------------------------------ tokenizers


def _byte_level_bpe(special_tokens: list[str], vocab_size: int = 600) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    return tokenizer


def _gpt_style_tokenizer(with_pad: bool) -> PreTrainedTokenizerFast:
    specials = [ENDOFTEXT] + ([NEOX_PAD] if with_pad else [])
    backend = _byte_level_bpe(specials)
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    kwargs = {"pad_token": NEOX_PAD} if with_pad else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        unk_token=ENDOFTEXT,
        model_max_length=MAX_POSITIONS,
        **kwargs,
    )


def _roberta_tokenizer() -> PreTrainedTokenizerFast:
    backend = _byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])  # ids 0..4, as in RoBERTa
    backend.post_processor = processors.RobertaProcessing(
        ("</s>", backend.token_to_id("</s>")),
        ("<s>", backend.token_to_id("<s>")),
        trim_offsets=True,
        add_prefix_space=False,
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=MAX_POSITIONS,
    )


def _wordpiece_tokenizer() -> PreTrainedTokenizerFast:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] = 0, BertConfig's pad_token_id
    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials, show_progress=False)
    backend.train_from_iterator(CORPUS, trainer=trainer)
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=MAX_POSITIONS,
    )


# ------------------------------------------------------------------ models


def _save(model, tokenizer, folder: Path) -> str:
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_models_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny_gpt_neox_dir(tiny_models_root) -> str:
    """GPTNeoXForCausalLM (hidden 32, 2 layers, 4 heads), BOS = EOS = <|endoftext|>, pad <|padding|>."""
    tokenizer = _gpt_style_tokenizer(with_pad=True)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
    )
    torch.manual_seed(SEED)
    model = GPTNeoXForCausalLM(config)
    return _save(model, tokenizer, tiny_models_root / "gpt_neox")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tiny_models_root) -> str:
    """GPT2LMHeadModel (n_embd 32, 2 layers, 4 heads), BOS = EOS = <|endoftext|>, no pad token (as GPT-2)."""
    tokenizer = _gpt_style_tokenizer(with_pad=False)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_inner=64,
        n_positions=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        dtype="float32",
    )
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(config)
    return _save(model, tokenizer, tiny_models_root / "gpt2")


@pytest.fixture(scope="session")
def tiny_bert_dir(tiny_models_root) -> str:
    """BertForMaskedLM (hidden 32, 2 layers, 4 heads), lower-casing WordPiece tokenizer."""
    tokenizer = _wordpiece_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    torch.manual_seed(SEED)
    model = BertForMaskedLM(config)
    return _save(model, tokenizer, tiny_models_root / "bert")


@pytest.fixture(scope="session")
def tiny_roberta_dir(tiny_models_root) -> str:
    """RobertaForMaskedLM (hidden 32, 2 layers, 4 heads), byte-level BPE with <s> </s> <pad> <mask>."""
    tokenizer = _roberta_tokenizer()
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS + 2,
        type_vocab_size=1,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    torch.manual_seed(SEED)
    model = RobertaForMaskedLM(config)
    return _save(model, tokenizer, tiny_models_root / "roberta")


@pytest.fixture(scope="session")
def tiny_llama_dir(tiny_models_root) -> str:
    """LlamaForCausalLM (hidden 32, 2 layers, 4 heads, 2 key-value heads): q_proj/k_proj/v_proj/o_proj and
    gate/up/down_proj, the layer names Llama, Gemma and Mistral share (AWQ / SmoothQuant tests)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _gpt_style_tokenizer(with_pad=True)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config)
    return _save(model, tokenizer, tiny_models_root / "llama")


@pytest.fixture(scope="session")
def tiny_gemma2_dir(tiny_models_root) -> str:
    """Gemma2ForCausalLM (hidden 32, 2 layers, 4 heads, 2 key-value heads) with final_logit_softcapping
    small enough to bend its logits: the model's forward applies tanh(logits / cap) * cap after the head,
    so a scorer that runs the head itself must apply it too."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    tokenizer = _gpt_style_tokenizer(with_pad=True)
    config = Gemma2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=MAX_POSITIONS,
        sliding_window=MAX_POSITIONS,
        final_logit_softcapping=GEMMA2_SOFTCAP,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    torch.manual_seed(SEED)
    model = Gemma2ForCausalLM(config)
    return _save(model, tokenizer, tiny_models_root / "gemma2")


@pytest.fixture(scope="session")
def tiny_cohere_dir(tiny_models_root) -> str:
    """CohereForCausalLM (hidden 32, 2 layers): its forward multiplies the head's logits by
    config.logit_scale, which running the head on the body's output does not, so the causal
    scorer must fall back to the model's own full logits."""
    from transformers import CohereConfig, CohereForCausalLM

    tokenizer = _gpt_style_tokenizer(with_pad=True)
    config = CohereConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        logit_scale=4.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    torch.manual_seed(SEED)
    model = CohereForCausalLM(config)
    return _save(model, tokenizer, tiny_models_root / "cohere")


# ------------------------------------------------------------------ data


def _annotations(bias_type: str, index: int) -> str:
    votes = [[bias_type]] * 4 + ([[]] if index % 3 == 0 else [[bias_type]])
    return str(votes)


@pytest.fixture(scope="session")
def crows_pairs_fixture_csv(tmp_path_factory) -> str:
    """A data folder holding crows_pairs/crows_pairs_anonymized.csv in the authors' format.

    Returns the folder to point LM_EVAL_BIAS_DATA_DIR at. The rows are CROWS_PAIRS_ROWS
    (all nine bias types, both directions, one pair of different lengths, one with quotes).
    """
    data = tmp_path_factory.mktemp("bias_data") / "data"
    path = data / "crows_pairs" / "crows_pairs_anonymized.csv"
    path.parent.mkdir(parents=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CROWS_PAIRS_HEADER)
        for index, (more, less, direction, bias_type) in enumerate(CROWS_PAIRS_ROWS):
            annotators = str([f"a{10 + 5 * index + k}" for k in range(5)])
            writer.writerow(
                [index, more, less, direction, bias_type, _annotations(bias_type, index), f"a{index}", annotators]
            )
    return str(data)


@pytest.fixture(scope="session")
def bias_data_dir(tmp_path_factory, crows_pairs_fixture_csv) -> Path:
    """A data folder with the StereoSet JSONL, every SEAT test file, the CrowS-Pairs fixture, four
    BBQ categories (fixtures/bbq.py) and the HolisticBias lists (fixtures/holistic_bias.py)."""
    folder = tmp_path_factory.mktemp("stereoset_seat_data")
    write_stereoset_jsonl(folder)
    write_seat(folder)
    shutil.copytree(Path(crows_pairs_fixture_csv) / "crows_pairs", folder / "crows_pairs")
    write_bbq(folder)
    write_holistic_bias(folder)
    return folder


@pytest.fixture(scope="session")
def task_manager():
    return our_tasks()


@pytest.fixture
def data_env(bias_data_dir, monkeypatch) -> Path:
    monkeypatch.setenv("LM_EVAL_BIAS_DATA_DIR", str(bias_data_dir))
    return bias_data_dir


@pytest.fixture
def single_thread():
    """One intra-op thread: the tiny test models gain nothing from more, and on a shared,
    busy machine every extra thread turns each small op into a scheduler wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
