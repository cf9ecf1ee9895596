"""The summary processor: the follow-up of a documents session (chalicelib.chains) asks the model
for a short summary of each document the parent read.

A unit's source is the parent's result object; the text sent is its start, up to INPUT_CHARS
(the summary says when it saw only the start). The model's answer is checkpointed as a prompt's
is, so a retry after a late failure does not pay for the call again.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalicelib.chains import parent_text
from chalicelib.errors import PermanentError, UnitSkipped
from chalicelib.models import PromptOptions
from chalicelib.processors.base import ProcessorOutput, Scalar, UnitContext, processor
from chalicelib.processors.prompts import answer, model_output

if TYPE_CHECKING:
    from chalicelib.model import ChatRequest

# About 6,000 tokens: the start of a long document says what it is about, and it fits any model.
INPUT_CHARS = 24_000
SUMMARY_TOKENS = 400

INSTRUCTIONS = (
    "Summarize the document the user sends for a reader deciding whether to read it: three to "
    "five sentences, in the document's language, naming its subject, its main points and any "
    "conclusion. Answer with the summary only."
)


def summary_request(name: str, text: str, options: PromptOptions) -> ChatRequest:
    from chalicelib.model import ChatRequest

    return ChatRequest(
        messages=[
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": f"Document: {name}\n\n{text[:INPUT_CHARS]}"},
        ],
        temperature=options.temperature,
        max_tokens=options.max_tokens or SUMMARY_TOKENS,
    )


@processor(
    "summary",
    spans={"downloading": (0.0, 10.0), "parsing": (10.0, 95.0), "saving": (95.0, 100.0)},
    fields=("summary", "truncated", "tokens_in", "tokens_out", "latency_ms", "model"),
)
def summarize_result(ctx: UnitContext) -> ProcessorOutput:
    ctx.stage("downloading")
    with ctx.open() as stream:
        try:
            document = json.loads(stream.read())
        except ValueError as exc:
            raise PermanentError(
                "The parent session's result could not be read.", code="parent_result_unreadable"
            ) from exc
    text = parent_text(document) if isinstance(document, dict) else ""
    if not text.strip():
        raise UnitSkipped("The document has no text to summarise.", code="no_text")
    options = PromptOptions.model_validate(ctx.options)
    ctx.stage("parsing")  # the model call
    request = summary_request(ctx.name, text, options)
    completion = answer(ctx, request, options.model)
    ctx.stage("saving")
    fields: dict[str, Scalar] = {"summary": completion.text, "truncated": len(text) > INPUT_CHARS}
    return model_output(completion, fields, body={"document": ctx.name, "chars": len(text)})
