"""The base of every lm-eval-bias task class: the one place where a task's YAML config is adapted.

lm-eval builds a task whose YAML says ``class: !function utils.SomeTask`` as
``SomeTask(config=<the YAML as a dict>)``. :class:`BiasTask` adapts that dict in its ``__init__``,
before lm-eval's ``ConfigurableTask`` sees it, from what the subclass declares:

- ``REQUEST_TYPE``: a request type of ours (:mod:`lm_eval_bias.request_types`) that the task emits.
  lm-eval accepts only its four output types, so the YAML's ``output_type`` is set aside; None keeps
  the YAML's (crows_pairs_bias: ``multiple_choice``).
- ``PAPER_REQUEST_TYPE``: the request type emitted under ``--metadata '{"protocol": "paper"}'``.
- ``FOLLOWS_PROTOCOL`` (and ``STEREOSET``): the protocol (and StereoSet's file split) is resolved
  into the metadata (:func:`lm_eval_bias.protocol.resolved`), so the custom_dataset function reads
  it and the results JSON records it under ``configs.<task>.metadata``.

Subclasses write no ``__init__``. What they may override: :meth:`BiasTask.read_settings` (the
settings they take from the metadata, checked before any data is read),
:meth:`BiasTask.request_type` (when the request type depends on more than the protocol) and
:meth:`BiasTask.request_arguments` (the arguments of each request of ours for a document).
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.task import ConfigurableTask

from lm_eval_bias import protocol
from lm_eval_bias.data.text_files import collecting_warnings
from lm_eval_bias.request_types import REQUEST_TYPES

DATA_WARNINGS_KEY = "data_warnings"  # configs.<task>.metadata: the data warnings of the rows the task read


class BiasTask(ConfigurableTask):
    """A YAML-configured task whose config is adapted from the class's declarations (see the module)."""

    REQUEST_TYPE: str | None = None
    PAPER_REQUEST_TYPE: str | None = None
    FOLLOWS_PROTOCOL: bool = False
    STEREOSET: bool = False

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        config = {key: value for key, value in (config or {}).items() if key != "class"}  # not a TaskConfig field
        if self.FOLLOWS_PROTOCOL:
            config["metadata"] = protocol.resolved(config.get("metadata"), stereoset=self.STEREOSET)
        if self.REQUEST_TYPE is not None:
            config["output_type"] = None  # not one of lm-eval's four; OUTPUT_TYPE says what the task emits
        self.protocol = config["metadata"][protocol.PROTOCOL_KEY] if self.FOLLOWS_PROTOCOL else None
        self.read_settings(config.get("metadata") or {})
        with collecting_warnings() as data_warnings:
            super().__init__(config=config, **kwargs)
        if data_warnings and isinstance(self.config.metadata, dict):  # legal but unusual data, in the results JSON
            self.config.metadata[DATA_WARNINGS_KEY] = list(data_warnings)
        self.OUTPUT_TYPE = self.request_type() or self.OUTPUT_TYPE

    def read_settings(self, metadata: dict[str, Any]) -> None:
        """Read and check the settings the task takes from its metadata, before any data is read.

        Args:
            metadata: the task's metadata, with lm-eval's ``--metadata`` and model_args merged in and
                the protocol resolved.
        """

    def request_type(self) -> str | None:
        """The request type of ours that the task emits, once its config is built.

        Returns:
            ``PAPER_REQUEST_TYPE`` under the paper protocol where the class declares one, else
            ``REQUEST_TYPE``; None: lm-eval's own, from the YAML's ``output_type``.
        """
        if self.protocol == "paper" and self.PAPER_REQUEST_TYPE is not None:
            return self.PAPER_REQUEST_TYPE
        return self.REQUEST_TYPE

    def request_arguments(self, doc: dict) -> list[tuple]:
        """The arguments of each request of ours for one document.

        Args:
            doc: one document of the task's dataset.

        Returns:
            One argument tuple per request, in the order the responses reach ``process_results``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} emits {self.OUTPUT_TYPE!r} requests: define request_arguments"
        )

    def construct_requests(self, doc: dict, ctx: Any, **kwargs: Any) -> list[Instance]:
        if self.OUTPUT_TYPE not in REQUEST_TYPES:  # one of lm-eval's own
            return super().construct_requests(doc, ctx, **kwargs)
        kwargs.pop("apply_chat_template", None)
        kwargs.pop("chat_template", None)
        return [
            Instance(request_type=self.OUTPUT_TYPE, doc=doc, arguments=arguments, idx=index, **kwargs)
            for index, arguments in enumerate(self.request_arguments(doc))
        ]
