"""The class map of a detection dataset whose annotations name their classes (COCO categories,
Pascal VOC object names): class id 0..N-1 -> name (and COCO's category id). Pure functions.

SSD predicts class ids 0..num_classes-1, so names and COCO's category ids (any integers, often
with gaps: COCO's 80 categories run from 1 to 90) are mapped onto them, in a documented order:
ascending category id for COCO, the order of `classes.txt` or else the sorted names for VOC. The
map is written into the model directory as `class_map.json`, so that whoever reads the model's
class ids can name them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

FILE = "class_map.json"
SHOWN = 12  # classes named in the log line and in messages


@dataclass(frozen=True)
class ClassMap:
    format: str  # "coco" | "voc"
    source: str  # where the classes come from, for messages
    names: tuple[str, ...]
    category_ids: tuple[int, ...] = ()  # COCO: the category id of each class

    def __len__(self) -> int:
        return len(self.names)

    def class_of_category(self) -> dict[int, int]:
        return {category: index for index, category in enumerate(self.category_ids)}

    def class_of_name(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.names)}

    def document(self) -> dict:
        """class_map.json: the format, and per class id its name (and COCO category id)."""
        classes = []
        for index, name in enumerate(self.names):
            entry: dict = {"class_id": index, "name": name}
            if self.category_ids:
                entry["category_id"] = self.category_ids[index]
            classes.append(entry)
        return {"format": self.format, "classes": classes}

    def text(self) -> str:
        return json.dumps(self.document(), indent=2) + "\n"

    def describe(self, limit: int = SHOWN) -> str:
        """'0=person (category 1), 1=bicycle (category 2), ...' for the log."""
        shown = [
            f"{i}={name}" + (f" (category {self.category_ids[i]})" if self.category_ids else "")
            for i, name in enumerate(self.names[:limit])
        ]
        more = f", ... ({len(self.names)} classes)" if len(self.names) > limit else ""
        return ", ".join(shown) + more

    def count_problem(self, num_classes: int) -> str | None:
        """num_classes must be the number of classes the annotations define."""
        if num_classes == len(self.names):
            return None
        return (
            f"num_classes={num_classes}, but {self.source} define {len(self.names)} class(es): "
            f"{self.describe(8)}; set num_classes={len(self.names)}"
        )


def coco_classes(categories: Iterable[tuple[int, str]], source: str) -> tuple[ClassMap | None, list[str]]:
    """Class ids in ascending category id. The same id must have the same name everywhere (the
    train and validation files)."""
    names: dict[int, str] = {}
    problems = []
    for category, name in categories:
        if names.setdefault(category, name) != name:
            problems.append(
                f"{source}: category id {category} is named both {names[category]!r} and {name!r}"
            )
    if problems:
        return None, problems
    ordered = sorted(names)
    return ClassMap("coco", source, tuple(names[c] for c in ordered), tuple(ordered)), []


def voc_classes(found: Iterable[str], listed: list[str] | None, source: str) -> ClassMap:
    """Class ids from `classes.txt` (its lines, in order) when given, else from the sorted names."""
    if listed is not None:
        return ClassMap("voc", source, tuple(listed))
    return ClassMap("voc", source, tuple(sorted(set(found))))


def parse_classes_txt(text: str, name: str) -> tuple[list[str], list[str]]:
    """The class names of a classes.txt (one a line, blank lines ignored), and its problems."""
    names, problems, seen = [], [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry:
            continue
        if entry in seen:
            problems.append(f"{name}:{number}: class {entry!r} is listed twice (also on line {seen[entry]})")
            continue
        seen[entry] = number
        names.append(entry)
    if not names and not problems:
        problems.append(f"{name}: lists no class names (one name a line)")
    return names, problems
