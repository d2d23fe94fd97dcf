"""Keeps the documentation's hyperparameter tables generated from the schema.

python -m sagemaker_cv.tools.docs [docs/hyperparameters.md]      # rewrite the tables in place
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from sagemaker_cv import algorithms


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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "docs/hyperparameters.md")
    path.write_text(render_tables(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
