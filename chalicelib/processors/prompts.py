"""The prompts processor: one row of a batch, rendered into a message, answered by a chat model.

Without a template the row's prompt goes to the built-in prompt enhancer, which asks the model for
a JSON object `{"enhanced_prompt", "technique"}`; with one, the rendered template is the whole
message and the answer is kept as text. An answer that should be JSON and is not is kept as text
too: the row completes with what the model said, never fails for its wording.

Once the model has answered, the answer is saved as the unit's checkpoint: an attempt that fails
after that (saving the result, say) is retried without paying for the model call again.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from chalicelib.batch import read_row
from chalicelib.models import PromptOptions
from chalicelib.processors.base import ClientKey, ProcessorOutput, Scalar, UnitContext, processor
from chalicelib.prompttemplate import render

if TYPE_CHECKING:
    from chalicelib.config import WorkSettings
    from chalicelib.model import ChatRequest, Completion, Message, ModelClient
    from chalicelib.services import Services

# chalicelib.model (httpx) is imported where a model is called: the API function, which imports
# every processor through the worker module, never loads it.

ENHANCER = (
    "You improve prompts written for generative AI models. Rewrite the user's prompt so that it "
    "is specific, complete and unambiguous, keeping its intent and language, and name the "
    "prompting technique you applied. Answer with only a JSON object: "
    '{"enhanced_prompt": "<the improved prompt>", "technique": "<the technique>"}'
)


def model_key(model: str | None) -> ClientKey[ModelClient]:
    """The client of `model` (None: the deployment's), built once per process and model."""

    def build(services: Services[Any]) -> ModelClient:
        from chalicelib.model import build_model_client

        settings: WorkSettings = services.settings
        if model is not None:
            settings = settings.model_copy(update={"model": model})
        return build_model_client(settings, services.aws_client)

    return ClientKey(f"model:{model or ''}", build)


def chat_request(prompt: str, cells: dict[str, str], options: PromptOptions) -> ChatRequest:
    from chalicelib.model import ChatRequest

    messages: list[Message]
    if options.template is None:
        messages = [
            {"role": "system", "content": ENHANCER},
            {"role": "user", "content": prompt},
        ]
    else:
        messages = [
            {"role": "user", "content": render(options.template, {**cells, "prompt": prompt})}
        ]
    return ChatRequest(
        messages=messages,
        temperature=options.temperature,
        max_tokens=options.max_tokens,
        response_json=options.template is None,
    )


def read_answer(completion: Completion, structured: bool) -> dict[str, Scalar]:
    """The answer's fields: the enhancer's two when it kept to JSON, else the text alone."""
    fields: dict[str, Scalar] = {
        "response": completion.text,
        "enhanced_prompt": None,
        "technique": None,
    }
    if structured:
        try:
            parsed = json.loads(_unfenced(completion.text))
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            for name in ("enhanced_prompt", "technique"):
                value = parsed.get(name)
                if isinstance(value, str):
                    fields[name] = value
    return fields


def _unfenced(text: str) -> str:
    """Models often wrap JSON in a Markdown code fence; look inside it."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        inner = stripped[3:-3]
        return inner.split("\n", 1)[1] if "\n" in inner else inner
    return stripped


def answer(ctx: UnitContext, request: ChatRequest, model: str | None) -> Completion:
    """The model's answer to the row: from the checkpoint an earlier attempt saved once it had
    it (a retry after a late failure does not pay for the call again), else from the model,
    then saved as the checkpoint."""
    from chalicelib.model.base import Completion

    saved = ctx.resume_state
    if isinstance(saved, dict) and isinstance(saved.get("answer"), dict):
        try:
            return Completion(**saved["answer"])
        except TypeError:
            pass  # saved by another version: ask again
    completion = ctx.client(model_key(model)).complete(request)
    ctx.checkpoint({"answer": dataclasses.asdict(completion)})
    return completion


@processor(
    "prompt",
    spans={"downloading": (0.0, 5.0), "parsing": (5.0, 95.0), "saving": (95.0, 100.0)},
    fields=(
        "response",
        "enhanced_prompt",
        "technique",
        "tokens_in",
        "tokens_out",
        "latency_ms",
        "model",
    ),
)
def run_prompt(ctx: UnitContext) -> ProcessorOutput:
    ctx.stage("downloading")
    with ctx.open() as stream:
        row = read_row(stream.read())
    options = PromptOptions.model_validate(ctx.options)
    ctx.stage("parsing")  # rendering, and the model call
    request = chat_request(row.prompt, row.columns, options)
    completion = answer(ctx, request, options.model)
    ctx.stage("saving")
    fields = read_answer(completion, structured=request.response_json)
    return model_output(
        completion,
        fields,
        body={
            "row": row.number,
            "prompt": row.prompt,
            "columns": row.columns,
            "messages": request.messages,
        },
    )


def model_output(
    completion: Completion, fields: dict[str, Scalar], body: dict[str, Any]
) -> ProcessorOutput:
    """A unit's output around a model's answer: `fields`, then what the call cost and who
    answered; the tokens are summed on the session."""
    metadata: dict[str, Scalar] = {
        **fields,
        "tokens_in": completion.tokens_in,
        "tokens_out": completion.tokens_out,
        "latency_ms": completion.latency_ms,
        "model": completion.model,
    }
    return ProcessorOutput(
        metadata=metadata,
        body=body,
        amounts={"tokens_in": completion.tokens_in, "tokens_out": completion.tokens_out},
    )
