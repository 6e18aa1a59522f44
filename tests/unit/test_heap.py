"""lm_eval_bias.scoring.heap: freed activations stay in the process inside the scope (glibc)."""

from __future__ import annotations

import ctypes
import resource

import pytest

from lm_eval_bias.scoring import heap

ROUND_PAGES = 4 * (30 << 20) // resource.getpagesize()


def faults_for_layer_rounds(rounds: int = 4) -> int:
    """Minor page faults over `rounds` rounds of a layer's worth of activations: four 30 MiB blocks
    allocated as PyTorch does (64-byte aligned), written, and freed newest first into the heap top."""
    libc = heap.glibc()
    libc.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        blocks = []
        for _ in range(4):
            block = ctypes.c_void_p()
            assert libc.posix_memalign(ctypes.byref(block), 64, 30 << 20) == 0
            ctypes.memset(block, 1, 30 << 20)
            blocks.append(block.value)
        for block in reversed(blocks):
            libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


needs_glibc = pytest.mark.skipif(heap.glibc() is None, reason="the C library is not glibc")


@needs_glibc
def test_inside_the_scope_freed_activations_are_reused_without_faulting_their_pages_again():
    with heap.retained_heap():
        pass  # leaves the thresholds where every later scope leaves them
    outside = faults_for_layer_rounds()
    with heap.retained_heap() as retained:
        assert retained
        inside = faults_for_layer_rounds()
        again = faults_for_layer_rounds()
    after = faults_for_layer_rounds()
    # 120 MiB freed into the heap top: over glibc's 64 MiB trim threshold, within the scope's 256 MiB
    assert outside > 2.5 * ROUND_PAGES and after > 2.5 * ROUND_PAGES  # handed back and faulted in again
    assert inside < 1.5 * ROUND_PAGES  # at most the first round's first touch
    assert again < 0.1 * ROUND_PAGES


@needs_glibc
def test_nested_scopes_keep_the_heap_until_the_outermost_leaves():
    with heap.retained_heap():
        with heap.retained_heap():
            faults_for_layer_rounds(1)
        assert faults_for_layer_rounds() < 0.1 * ROUND_PAGES
    assert heap._depth == 0


class FakeLibc:
    """Records mallopt and malloc_trim calls in place of glibc."""

    def __init__(self):
        self.thresholds: dict[int, int] = {}
        self.trims = 0

    def mallopt(self, parameter, value):
        self.thresholds[parameter] = value
        return 1

    def malloc_trim(self, pad):
        self.trims += 1
        return 1


def test_thresholds_are_set_for_the_scope_and_set_to_the_ceilings_after_even_on_error(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(heap, "glibc", lambda: libc)
    with pytest.raises(RuntimeError):
        with heap.retained_heap():
            assert libc.thresholds == {-3: 32 << 20, -1: 256 << 20}
            with heap.retained_heap():
                pass
            assert libc.thresholds == {-3: 32 << 20, -1: 256 << 20} and libc.trims == 0
            raise RuntimeError("scoring failed")
    assert libc.thresholds == {-3: 32 << 20, -1: 64 << 20}
    assert libc.trims == 1 and heap._depth == 0


def test_without_glibc_the_scope_does_nothing(monkeypatch):
    monkeypatch.setattr(heap, "glibc", lambda: None)
    with heap.retained_heap() as retained:
        assert retained is False
        assert heap._depth == 0


@pytest.mark.parametrize(
    "name, value", [("MALLOC_TRIM_THRESHOLD_", "1000000"), ("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")]
)
def test_a_users_own_malloc_tuning_is_left_alone(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    assert heap.glibc() is None
    with heap.retained_heap() as retained:
        assert retained is False


# ------------------------------------------------------------------ every batched scorer uses it


def _causal(gpt_dir, bert_dir):
    from transformers import AutoModelForCausalLM

    from lm_eval_bias.scoring.causal import score_continuations

    model = AutoModelForCausalLM.from_pretrained(gpt_dir).eval()
    requests = [([1, 2, 3], [4, 5]), ([6], [7, 8, 9])]
    return model, lambda: score_continuations(model, requests, batch_size=2, pad_token_id=0)


def _masked(scorer_name):
    def build(gpt_dir, bert_dir):
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        from lm_eval_bias.scoring.embeddings import sentence_embeddings
        from lm_eval_bias.scoring.masked import score_minimal_pairs
        from lm_eval_bias.scoring.stereoset import score_masked

        model = AutoModelForMaskedLM.from_pretrained(bert_dir).eval()
        tokenizer = AutoTokenizer.from_pretrained(bert_dir)
        calls = {
            "pll": lambda: score_minimal_pairs(model, tokenizer, [("The poor man.", "The rich man.")], batch_size=2),
            "stereoset": lambda: score_masked(
                model, tokenizer, [("intersentence", "He plays chess.", "He is smart.", "pll")], batch_size=2
            ),
            "embeddings": lambda: sentence_embeddings(
                model.base_model, tokenizer, ["A man.", "A woman."], batch_size=2
            ),
        }
        return model, calls[scorer_name]

    return build


@pytest.mark.parametrize(
    "build",
    [_causal, _masked("pll"), _masked("stereoset"), _masked("embeddings")],
    ids=["causal", "masked_pll", "masked_stereoset", "seat_embeddings"],
)
def test_batched_scorers_run_their_forward_passes_inside_the_scope(
    monkeypatch, tiny_gpt_neox_dir, tiny_bert_dir, build
):
    libc = FakeLibc()
    monkeypatch.setattr(heap, "glibc", lambda: libc)
    model, score = build(tiny_gpt_neox_dir, tiny_bert_dir)
    depths = []
    model.base_model.register_forward_hook(lambda *_: depths.append(heap._depth))
    score()
    assert depths and all(depth == 1 for depth in depths)
    assert libc.trims == 1 and heap._depth == 0
