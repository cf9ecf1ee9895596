"""A prompts batch for the demo and the benchmarks: varied on purpose, and the same for a seed.

Rows mix plain prompts with the ones batch tools get wrong: non-Latin scripts and emoji, quotes
and commas, embedded newlines, leading `=`/`+`/`-`/`@` (formula-looking), long prompts. Each row
has other columns besides its prompt (id, topic, tone), which a template can use.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from pathlib import Path

HEADER = ["id", "prompt", "topic", "tone"]
TOPICS = ["cats", "océans", "東京の朝", "jazz, blues & soul", 'the "quiet" hour', "Ω-3"]
TONES = ["dry", "warm", "playful", "formal"]
SHAPES = [
    "Write a haiku about {topic}.",
    "Describe {topic} to a child, in two sentences.",
    'Explain "{topic}" — with quotes, commas, and care.',
    "List three facts about {topic}:\n1.\n2.\n3.",
    '=HYPERLINK("http://example.com", "{topic}")',
    "+1 idea for {topic}",
    "-- a dash-led prompt about {topic}",
    "@mention someone who loves {topic}",
    "Résumé d'un jour: {topic} ☕🚀",
    "Напиши короткий рассказ о {topic}.",
    "用一句话描述{topic}。",
    "A long one: " + "tell me more about {topic}, " * 20,
]


@dataclass(frozen=True)
class PromptRow:
    id: str
    prompt: str
    topic: str
    tone: str


def prompt_rows(count: int, seed: int = 0) -> list[PromptRow]:
    """`count` varied rows, the same for the same seed."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        topic = rng.choice(TOPICS)
        prompt = SHAPES[n % len(SHAPES)].format(topic=topic)
        rows.append(
            PromptRow(id=f"p{n + 1:04d}", prompt=prompt, topic=topic, tone=rng.choice(TONES))
        )
    return rows


def prompts_csv(rows: list[PromptRow]) -> bytes:
    """The rows as a CSV file with a header, as a spreadsheet would save it (UTF-8, CRLF)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(HEADER)
    for row in rows:
        writer.writerow([row.id, row.prompt, row.topic, row.tone])
    return out.getvalue().encode("utf-8")


def write_prompts_csv(path: Path, count: int, seed: int = 0) -> list[PromptRow]:
    rows = prompt_rows(count, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(prompts_csv(rows))
    return rows
