"""A seeded, self-contained corpus of realistic Elixir modules for training without user data.

``generate_modules`` composes modules of seven kinds (plain utilities, GenServers, supervisors,
Ecto schemas, Phoenix controllers and views, Stream pipelines) from vocabularies and building
blocks, each with a matching ExUnit test; ``generate_records`` turns them into JSONL-schema
records for the generation tasks. Both are deterministic in their arguments.
"""

from __future__ import annotations

from elixir_coder.corpus.demo.modules import DemoFunction, DemoModule, generate_modules
from elixir_coder.corpus.demo.tasks import generate_records

__all__ = ["DemoFunction", "DemoModule", "generate_modules", "generate_records"]
