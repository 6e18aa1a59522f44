"""The LM head once per distinct prefix, over all the requests of a call (``share_prefixes``).

Sentences scored whole (HolisticBias: "I wanted to share with you that I'm a Deaf grandpa.", the
same template start and descriptor before each of 32 nouns) and minimal pairs (CrowS-Pairs, up to
the first changed word) repeat token prefixes. For a model whose output at a position depends on
the tokens up to it alone, two positions with the same prefix have the same hidden state, so
their head outputs are the same too: the head's normaliser is needed once per distinct prefix,
and each next token that any request asks of that prefix is one gather from it.

:class:`PrefixHeads` numbers the prefixes with a trie over all the call's scored inputs before the
first batch, and collects for each prefix every next token asked of it. In the batches (in
their processing order) the first position with a prefix not yet headed is headed, for all its
next tokens at once (``linear_head_logprobs`` with ``rows``); every later position with that
prefix, in any batch, takes those results. On Gemma-3-270M's tokenizer HolisticBias's small set
has 747,162 scored positions, 188,073 distinct (prefix, next token) events and 119,018 distinct
prefixes: the head runs on 16% of the positions (25% per event).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lm_eval_bias.scoring.head import linear_head_logprobs, softcap_of


class PrefixHeads:
    """Head results by (prefix, next token), each prefix headed once with all of its next tokens.

    The constructor numbers the prefixes of the sequences that will be scored and collects each
    one's next tokens.

    Args:
        requests: ``(input ids, target ids)`` of every sequence the call scores: the model reads the
            input ids, and their last ``len(target ids)`` positions predict the targets. Prefixes of
            sequences not listed here get nodes too, as their batches arrive, but are headed for their
            own batch's next tokens only.

    Attributes:
        results: (prefix node, next token) -> (log-probability of the token, whether it is the argmax),
            filled as prefixes are headed.
    """

    def __init__(self, requests: Sequence[tuple[Sequence[int], Sequence[int]]] = ()) -> None:
        self._nodes: dict[tuple[int, int], int] = {}
        self._next: dict[int, dict[int, None]] = {}  # node -> next tokens asked of it (ordered set)
        self._headed: set[int] = set()
        self.results: dict[tuple[int, int], tuple[float, bool]] = {}
        for ids, target in requests:
            nodes = self._path(list(ids))
            for node, token in zip(nodes[len(nodes) - len(target) :], target):
                self._next.setdefault(node, {})[token] = None

    def _path(self, ids: list[int]) -> list[int]:
        node, nodes = 0, []
        for token in ids:
            node = self._nodes.setdefault((node, token), len(self._nodes) + 1)
            nodes.append(node)
        return nodes

    def events(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, targets: list[list[int]]):
        """One (prefix node, target) per scored position, in ``causal.scored_positions``' order.

        Args:
            input_ids: (batch, length) token ids of a right-padded batch.
            attention_mask: (batch, length) mask, 1 on real tokens.
            targets: for each row, the token ids its last real positions predict.

        Returns:
            ``(node, target id)`` tuples: ``node`` stands for the row's tokens up to and including the
            scored position (equal prefixes get the same node, in any batch).
        """
        out = []
        for ids, length, target in zip(input_ids.tolist(), attention_mask.sum(dim=1).tolist(), targets):
            nodes = self._path(ids[:length])
            out += zip(nodes[length - len(target) :], target)
        return out

    def score(
        self, model, head: torch.nn.Linear, input_ids, attention_mask, targets, rows, positions
    ) -> tuple[list[float], list[bool]]:
        """Score one batch's positions, heading only the prefixes no earlier position had.

        Args:
            model: the causal LM (its ``base_model`` gives the hidden states; its softcap is applied).
            head: its plain ``nn.Linear`` output embeddings.
            input_ids: (batch, length) token ids of a right-padded batch.
            attention_mask: (batch, length) mask, 1 on real tokens.
            targets: for each row, the token ids its last real positions predict.
            rows: the row of each scored position (``causal.scored_positions``).
            positions: the position of each scored position in its row (the same).

        Returns:
            ``(logprobs, greedy)``: one float and one bool per scored position, in ``rows``' order.
        """
        events = self.events(input_ids, attention_mask, targets)
        first: dict[int, int] = {}
        for i, (node, _) in enumerate(events):
            if node not in self._headed:
                first.setdefault(node, i)
        if first:  # a batch whose every prefix was headed before needs no forward at all
            hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask)[0]
            pick = sorted(first.values())
            nodes = [events[i][0] for i in pick]
            wanted = {node: dict(self._next.get(node, {})) for node in nodes}
            for node, token in events:  # tokens of sequences not listed at construction too
                if node in wanted:
                    wanted[node][token] = None
            device = rows.device
            pick_t = torch.as_tensor(pick, device=device)
            target_rows = [r for r, node in enumerate(nodes) for _ in wanted[node]]
            keys = [(node, token) for node in nodes for token in wanted[node]]
            target_ids = torch.as_tensor([token for _, token in keys], dtype=torch.long, device=device)
            logprobs, greedy = linear_head_logprobs(
                hidden[rows[pick_t], positions[pick_t]],
                head.weight,
                head.bias,
                target_ids,
                softcap_of(model),
                rows=torch.as_tensor(target_rows, device=device),
            )
            self.results.update(zip(keys, zip(logprobs.tolist(), greedy.tolist())))
            self._headed.update(first)
        values, flags = zip(*(self.results[event] for event in events))
        return list(values), list(flags)
