"""Multiple-choice contexts that begin alike: each shared beginning through the body once (a tree of contexts).

``shared_context`` runs each context once for all its answers. BBQ's contexts also share long
beginnings with each other: a passage serves two questions, and the disambiguated passage extends
the ambiguous one, so four contexts begin with the same passage. Here the distinct contexts form a
radix tree (:func:`context_tree`): a node is a run of tokens, its children the ways its contexts go
on, and a context ends at a node. :func:`score_context_tree` runs the body over the top nodes, keeps
their key/value cache, runs each node's children on copies of its rows (position ids going on from
the parent's, the padding of every level masked), and scores each context's answers on the cache of
the node where it ends (``shared_context.answers_on_cache``). On BBQ's 11,956 offline items with
Gemma-3's tokenizer the body reads 293,597 context positions instead of 765,185.

A beginning shorter than ``MIN_SEGMENT`` tokens shared by contexts that do not end there is run again
with each of them (one more forward on a copied cache costs more than a few positions). A batch whose
cache would reach past the model's sliding window scores its contexts whole with
``shared_context.score_shared_contexts``. Per-token log-probabilities equal those of scoring each
answer after its context, up to fp32 rounding; the model conditions are ``shared_context``'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from tqdm import tqdm

from lm_eval_bias.scoring.batching import (
    CPU_BATCH_SLACK,
    cheapest_batches,
    length_sorted_batches,
    min_tokens_per_batch,
    model_device,
    right_padded,
)
from lm_eval_bias.scoring.shared_context import (
    _cache,
    _cache_argument,
    _rows_of,
    answers_on_cache,
    score_shared_contexts,
    store_rows,
)
from lm_eval_bias.scoring.shared_prefix import common_length

MIN_SEGMENT = 4  # tokens a shared beginning needs to be run once for the contexts that go on from it
FORWARD_COST = 64  # what a forward on a cache costs beyond its tokens, in tokens: the nodes under a
# batch are split by length where that pads more than this, rather than held to a batch's token floor


@dataclass(frozen=True)
class Node:
    """A run of tokens in the tree of contexts.

    Attributes:
        segment: the node's tokens (after its parent's).
        group: the index of the context that ends here, or None.
        children: the nodes that go on from this one.
    """

    segment: tuple[int, ...]
    group: int | None = None
    children: tuple[Node, ...] = field(default=())


def context_tree(contexts: Sequence[Sequence[int]]) -> list[Node]:
    """The distinct contexts as a radix tree, shared beginnings shorter than ``MIN_SEGMENT`` repeated.

    Args:
        contexts: token ids, each non-empty; ``Node.group`` refers to the first index of each distinct one.

    Returns:
        The top nodes.
    """
    first: dict[tuple[int, ...], int] = {}
    for i, context in enumerate(contexts):
        first.setdefault(tuple(context), i)
    return _nodes(sorted(first.items()), 0)


def _nodes(items: list[tuple[tuple[int, ...], int]], offset: int) -> list[Node]:
    """The nodes of ``items`` (sorted, distinct, each longer than ``offset``) past their first ``offset`` tokens."""
    out, start = [], 0
    while start < len(items):
        stop = start + 1
        while stop < len(items) and items[stop][0][offset] == items[start][0][offset]:
            stop += 1
        block = items[start:stop]  # sorted, so its common prefix is that of its first and last
        end = offset + common_length(block[0][0][offset:], block[-1][0][offset:])
        group = block[0][1] if len(block[0][0]) == end else None
        children = _nodes([item for item in block if len(item[0]) > end], end)
        segment = block[0][0][offset:end]
        if group is None and len(segment) < MIN_SEGMENT:  # too short to run once: each child runs it again
            out += [replace(child, segment=segment + child.segment) for child in children]
        else:
            out.append(Node(segment, group, tuple(children)))
        start = stop
    return out


@dataclass(frozen=True)
class _Level:
    """The body's state after a batch of nodes: one cache row per node."""

    cache: object
    mask: torch.Tensor  # (nodes, cache width), 1 on every real position from the top node down
    lengths: torch.Tensor  # real positions per row: the next token's position id


def score_context_tree(
    model: torch.nn.Module,
    groups: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
    *,
    batch_size: int,
    pad_token_id: int,
    head_logprobs,
    progress: bool = False,
) -> list[list[tuple[tuple[float, ...], tuple[bool, ...]]]]:
    """Per-token log-probabilities of each continuation of each context, shared beginnings run once.

    Args:
        model: a causal LM that ``shared_context.can_share_contexts`` accepts, whose window holds each context
            and its longest answer (``shared_context.fits_window``).
        groups: ``(context ids, [continuation ids, ...])`` with distinct contexts; every continuation non-empty.
        batch_size: nodes per forward on an accelerator (on a CPU the token floor of ``batching``).
        pad_token_id: the padding id.
        head_logprobs: ``(hidden (positions, hidden size), target ids) -> (log-probs, is-argmax)``.
        progress: show a progress bar over the top nodes' batches.

    Returns:
        For each group, for each continuation: (log p of each token, whether each token is the argmax).
    """
    scorer = _TreeScorer(model, groups, batch_size, pad_token_id, head_logprobs)
    top = context_tree([context for context, _ in groups])
    batches = list(
        length_sorted_batches([len(n.segment) for n in top], batch_size, min_tokens_per_batch(model_device(model)))
    )
    for batch in tqdm(batches, desc="Scoring a tree of contexts", disable=not progress):
        scorer.run([(top[i], 0) for i in batch], None)
    return scorer.out


class _TreeScorer:
    def __init__(self, model, groups, batch_size, pad_token_id, head_logprobs):
        self.model, self.groups, self.batch_size, self.pad = model, groups, batch_size, pad_token_id
        self.head_logprobs, self.base, self.device = head_logprobs, model.base_model, model_device(model)
        self.window = getattr(model.config, "sliding_window", None)
        self.longest_answer = max(len(a) for _, answers in groups for a in answers)
        self.out: list[list] = [[None] * len(answers) for _, answers in groups]

    def run(self, members: list[tuple[Node, int]], parent: _Level | None) -> None:
        """Run a batch of nodes (each with its parent's cache row), score the answers of the contexts that
        end there, then their children, batch by batch."""
        nodes = [node for node, _ in members]
        ids, segment_mask = right_padded([node.segment for node in nodes], self.pad, self.device)
        width = (0 if parent is None else parent.mask.shape[1]) + ids.shape[1]
        if self.window and width + self.longest_answer > int(self.window):
            self._whole(nodes)
            return
        with torch.inference_mode():
            if parent is None:
                mask, start, extra = segment_mask, torch.zeros(len(nodes), dtype=torch.long, device=self.device), {}
            else:
                index = torch.as_tensor([row for _, row in members], device=self.device)
                mask, start = torch.cat([parent.mask[index], segment_mask], dim=1), parent.lengths[index]
                extra = {
                    "position_ids": start[:, None] + torch.arange(ids.shape[1], device=self.device),
                    _cache_argument(self.base): _rows_of(parent.cache, index),
                }
            output = self.base(input_ids=ids, attention_mask=mask, use_cache=True, **extra)
            level = _Level(_cache(output), mask, start + segment_mask.sum(dim=1))
            ends = [row for row, node in enumerate(nodes) if node.group is not None]
            if ends:
                self._answers(nodes, ends, output.last_hidden_state, segment_mask.sum(dim=1), level)
            del output  # its hidden states: the children need only the cache
        kids = [(child, row) for row, node in enumerate(nodes) for child in node.children]
        if not kids:
            return
        lengths = [len(child.segment) for child, _ in kids]
        # a child's cache row holds its parent's whole (padded) row: the rows of a batch are bounded by the
        # cache they make, as a batch of whole contexts is by its tokens
        wide = level.mask.shape[1] + max(lengths)
        floor = min_tokens_per_batch(self.device)
        most = int(CPU_BATCH_SLACK * floor) // wide if floor else self.batch_size
        for batch in cheapest_batches(lengths, most, FORWARD_COST):
            self.run([kids[i] for i in batch], level)

    def _answers(self, nodes, ends, hidden, segment_lengths, level: _Level) -> None:
        rows = [(row, a) for row in ends for a in range(len(self.groups[nodes[row].group][1]))]
        answers = [list(self.groups[nodes[row].group][1][a]) for row, a in rows]
        at = torch.as_tensor([row for row, _ in rows], device=self.device)
        last = hidden[at, segment_lengths[at] - 1]
        logprobs, greedy = answers_on_cache(
            self.base, level.cache, level.mask, level.lengths, rows, answers, last, self.pad, self.head_logprobs
        )
        store_rows(self.out, [nodes[row].group for row in range(len(nodes))], rows, answers, logprobs, greedy)

    def _whole(self, nodes) -> None:
        """The contexts under these nodes scored whole (their cache would reach past the sliding window)."""
        found, stack = [], list(nodes)
        while stack:
            node = stack.pop()
            found += [] if node.group is None else [node.group]
            stack += node.children
        scored = score_shared_contexts(
            self.model,
            [(list(self.groups[g][0]), self.groups[g][1]) for g in found],
            batch_size=self.batch_size,
            pad_token_id=self.pad,
            head_logprobs=self.head_logprobs,
        )
        for group, per_answer in zip(found, scored):
            self.out[group] = per_answer
