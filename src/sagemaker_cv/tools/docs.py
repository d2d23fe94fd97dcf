"""Keeps the documentation's generated tables current: the hyperparameters from the schema
(docs/hyperparameters.md), the environment variables from contract.environment (docs/usage.md).

python -m sagemaker_cv.tools.docs                  # rewrite both pages' tables in place
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from sagemaker_cv import algorithms
from sagemaker_cv.contract import environment


def render_tables(text: str) -> str:
    """Replace each block between `<!-- hyperparameters:ALG:begin -->` and its end marker."""
    for algorithm in algorithms.NAMES:
        begin, end = (
            f"<!-- hyperparameters:{algorithm}:begin -->",
            f"<!-- hyperparameters:{algorithm}:end -->",
        )
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            raise ValueError(f"the page has no {begin} ... {end} block")
        block = f"{begin}\n{algorithms.get(algorithm).schema.markdown_table()}{end}"
        text = pattern.sub(lambda _, block=block: block, text)  # a function: the table holds backslashes
    return text


def render_environment(text: str) -> str:
    """Replace the block between `<!-- environment:begin -->` and its end marker."""
    begin, end = "<!-- environment:begin -->", "<!-- environment:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"the page has no {begin} ... {end} block")
    return pattern.sub(lambda _: f"{begin}\n{environment.markdown_table()}{end}", text)


PAGES = {"docs/hyperparameters.md": render_tables, "docs/usage.md": render_environment}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0] if args else ".")
    for page, render in PAGES.items():
        path = root / page
        path.write_text(render(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
