"""quantized_hf under lm-eval's response cache (--use_cache): requests scored chunk by chunk, each chunk's
responses written before the next is scored, an item's answers never split; and a cell's attempts."""

from __future__ import annotations

import json
import os

import pytest

from lm_eval_bias.model_wrappers.quantized_hf import cache_chunks
from lm_eval_bias.study import resume


def _requests(contexts):
    return [((f"c{c}", f"a{i}"), [c], [100 + i]) for i, c in enumerate(contexts)]


def test_chunks_are_consecutive_and_keep_a_context_together():
    requests = _requests([1, 1, 1, 2, 2, 2, 3, 4, 4, 4])
    chunks = cache_chunks(requests, size=4)
    assert [len(chunk) for chunk in chunks] == [6, 4]  # the 4th request shares context 2 with the 5th and 6th
    assert [r for chunk in chunks for r in chunk] == requests
    assert [len(chunk) for chunk in cache_chunks(_requests(range(7)), size=3)] == [3, 3, 1]
    assert cache_chunks([], size=3) == []


def test_attempts_close_at_the_last_response_written(tmp_path):
    folder = tmp_path / "cache" / "abc"
    assert resume.begin_attempt(folder, now=100.0) == []
    db = tmp_path / "cache" / "abc" / "responses_rank0.db"
    db.write_bytes(b"x")
    os.utime(db, (180.0, 180.0))  # the first run's last write
    assert resume.begin_attempt(folder, now=300.0) == [[100.0, 180.0]]
    # a second run cut off before it wrote a response: the file's last write is the first run's, so the second
    # run counts no time
    assert resume.begin_attempt(folder, now=400.0) == [[100.0, 180.0], [300.0, 300.0]]
    assert json.loads((folder / resume.ATTEMPTS).read_text())[-1] == [400.0, None]
    resume.finish(folder)
    assert not folder.exists()


def test_each_chunk_is_in_the_cache_before_the_next_is_scored(tiny_gpt2_dir, tmp_path, monkeypatch):
    from lm_eval.api.instance import Instance
    from lm_eval.api.model import CachingLM, hash_args

    from lm_eval_bias.model_wrappers import quantized_hf

    lm = quantized_hf.QuantizedHFLM(pretrained=tiny_gpt2_dir, batch_size=4, device="cpu")
    args = [(f"Question {q}:", f" answer {a}") for q in range(6) for a in range(3)]  # 6 items, 3 answers each
    requests = [Instance("loglikelihood", {}, arguments, i) for i, arguments in enumerate(args)]
    whole = lm.loglikelihood(requests)  # no cache yet: one pass
    cached = CachingLM(lm, str(tmp_path / "responses_rank0.db"))

    monkeypatch.setattr(quantized_hf, "CACHE_CHUNK", 5)  # 5 requests end inside an item: chunks of 6
    real, calls = lm._score_tokens, []

    def fail_on_the_second_chunk(*a, **k):
        calls.append(len(a[0]))
        if len(calls) == 2:
            raise RuntimeError("cut off")
        return real(*a, **k)

    monkeypatch.setattr(lm, "_score_tokens", fail_on_the_second_chunk)
    with pytest.raises(RuntimeError, match="cut off"):
        cached.loglikelihood(requests)
    assert calls == [6, 6]
    stored = {i for i, arguments in enumerate(args) if hash_args("loglikelihood", arguments) in cached.dbdict}
    assert stored == set(range(6))  # the first item pair's answers (two items), nothing of the failed chunk

    calls.clear()
    monkeypatch.setattr(lm, "_score_tokens", lambda *a, **k: calls.append(len(a[0])) or real(*a, **k))
    resumed = cached.loglikelihood(requests)
    assert calls == [6, 6]  # only the 12 requests not in the cache
    assert [r[0] for r in resumed] == pytest.approx([r[0] for r in whole], abs=1e-5)
