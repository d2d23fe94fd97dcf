"""The class map of a detection dataset whose annotations name their classes (COCO categories,
Pascal VOC object names): class id 0..N-1 -> name (and COCO's category id). Pure functions.

SSD predicts class ids 0..num_classes-1, so names and COCO's category ids (any integers, often
with gaps: COCO's 80 categories run from 1 to 90) are mapped onto them, in a documented order:
ascending category id for COCO, the order of `classes.txt` or else the sorted names for VOC. The
map is written into the model directory as `class_map.json`, so that whoever reads the model's
class ids can name them: `sagemaker-cv evaluate` names the classes of data that carry no names
from it, and refuses data (as incremental training refuses a model) whose classes disagree with
the model's, where per-class figures and detections would silently mean other classes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sagemaker_cv.contract.errors import ClientError

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

    def disagreement(self, model: ClassMap, model_name: str) -> str | None:
        """Why this (the data's) class map is not `model`'s: each class id must name the same class
        in both, else the model's class ids would be read as other classes."""
        if self.names == model.names:
            return None
        first = next(
            i
            for i in range(max(len(self.names), len(model.names)))
            if i >= min(len(self.names), len(model.names)) or self.names[i] != model.names[i]
        )
        ours = repr(self.names[first]) if first < len(self.names) else "no class"
        theirs = repr(model.names[first]) if first < len(model.names) else "no class"
        unknown = [n for n in self.names if n not in model.names]
        if unknown:
            fix = f"the model knows no class {', '.join(map(repr, unknown[:SHOWN]))}"
        elif self.format == "voc":
            fix = (
                "a classes.txt in the annotation channel fixes VOC's class ids: list the model's "
                f"classes in its order ({', '.join(model.names[:SHOWN])}{', ...' if len(model.names) > SHOWN else ''})"
            )
        else:
            fix = "COCO's class ids follow ascending category id: number the categories in the model's order"
        return (
            f"{model_name}: its class_map.json has {model.describe(8)}, but {self.source} define "
            f"{self.describe(8)}; class {first} is {theirs} in the model and {ours} in the data, so the "
            f"model's class ids would be read as other classes; {fix}"
        )

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


def read_class_map(doc: object, where: str) -> ClassMap:
    """A model's class_map.json (as `ClassMap.document` writes it), checked; ClientError naming `where`."""
    classes = doc.get("classes") if isinstance(doc, dict) else None
    form = doc.get("format") if isinstance(doc, dict) else None
    if form not in ("coco", "voc") or not isinstance(classes, list) or not classes:
        raise ClientError(
            f'{where}: expected {{"format": "coco" or "voc", "classes": [{{"class_id": 0, "name": ...}}, ...]}}, '
            "as object-detection training writes it"
        )
    names, category_ids = [], []
    for index, entry in enumerate(classes):
        if (
            not isinstance(entry, dict)
            or type(entry.get("class_id")) is not int
            or entry["class_id"] != index
            or not isinstance(entry.get("name"), str)
        ):
            raise ClientError(
                f'{where}: classes[{index}] is {entry!r:.80}; expected {{"class_id": {index}, "name": ...}} '
                "(the classes in class id order)"
            )
        names.append(entry["name"])
        if type(entry.get("category_id")) is int:
            category_ids.append(entry["category_id"])
    ids = tuple(category_ids) if form == "coco" and len(category_ids) == len(names) else ()
    return ClassMap(form, where, tuple(names), ids)


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
