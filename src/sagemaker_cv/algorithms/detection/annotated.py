"""Images with annotations in File mode (`train` + `train_annotation`, `validation` +
`validation_annotation`), in three formats told apart by what the annotation channel holds:

* the built-in's JSON, one file per image (`labels.parse_annotation`);
* one COCO instances file (`coco`), a .json with an `images` list;
* Pascal VOC XML, one file per image (`voc`), with an optional `classes.txt`.

COCO and VOC name their classes, so both splits' annotations are read before either is checked:
the class map (`classes`) must cover both, and num_classes must match it. Then each split's
images are paired with their annotations, read one at a time, sized from the header (a pixel
cap, before any decoding), decoded once, checked, and packed into one .rec for MXNet's
detection iterator: memory does not grow with the images. Every defect names the file (and
image id or object); all of them are reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sagemaker_cv.algorithms.detection import coco, voc
from sagemaker_cv.algorithms.detection.classes import ClassMap, coco_classes, parse_classes_txt, voc_classes
from sagemaker_cv.algorithms.detection.labels import PixelBox, annotation_boxes, declared_size, pixel_objects
from sagemaker_cv.algorithms.detection.records import (
    PREPARING,
    PreparedDetection,
    RecordChecks,
    checked_size,
    pack,
)
from sagemaker_cv.contract import files, logs
from sagemaker_cv.contract.errors import ClientError
from sagemaker_cv.inputs.recordio import frame

log = logs.get("detection")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: a per-image annotation (JSON or XML) larger than this is not one
ANNOTATION_LIMIT = 1 << 24
CLASSES_TXT = "classes.txt"
FILE_FIELD = {"json": "'file'", "coco": "file_name", "voc": "<filename>"}  # where each names its image
SIZE_FIELD = {"json": "image_size says", "coco": "width and height say", "voc": "<size> says"}


@dataclass
class Entry:
    """One image's annotation, whatever its format."""

    where: str  # how messages name it: "train_annotation/a.json", "... instances.json image id 7"
    file: str | None  # the image's path in the image channel, as the annotation names it
    near: Path | None  # a per-image annotation file: its stem and folder find the image otherwise
    declared: tuple[int, int] | None = None  # (width, height) the annotation says the image has
    boxes: list[PixelBox | str] = field(default_factory=list)  # a str: a malformed box
    problems: list[str] = field(default_factory=list)  # defects of the annotation as a whole


@dataclass
class Source:
    """One split's annotation channel, read."""

    format: str  # "json" | "coco" | "voc" | "mixed" (unreadable as any)
    problems: list[str] = field(default_factory=list)
    docs: list = field(default_factory=list)  # json: (path, doc); coco: CocoSet; voc: VocImage
    classes_txt: list[str] | None = None
    unread: set[str] = field(default_factory=set)  # stems of files named in `problems`, not read
    blind: bool = False  # a directory of the channel could not be listed

    def may_annotate(self, image: Path) -> bool:
        """Whether `image`'s annotation may be a file this channel named already as unreadable (or
        could not list): then "image without annotation" would only repeat that. Per-image files
        match by stem; when nothing at all was read, the one unread file may be a COCO file."""
        return self.blind or image.stem in self.unread or bool(self.unread and not self.docs)


def _where(path: Path, root: Path, channel: str) -> str:
    return f"{channel}/{path.relative_to(root).as_posix()}"


def read_source(directory: Path, channel: str) -> Source:
    """Tell the annotation channel's format from its files and read them."""
    listing = files.list_channel(directory, channel, lambda p: p.suffix.lower() in (".json", ".xml", ".txt"))
    paths, problems = listing.files, listing.problems
    by_kind = {s: [p for p in paths if p.suffix.lower() == s] for s in (".json", ".xml")}
    if by_kind[".xml"] and by_kind[".json"]:
        problems.append(
            f"channel {channel!r} holds both .json ({len(by_kind['.json'])}) and .xml ({len(by_kind['.xml'])}) "
            "annotations; use one format per channel: per-image JSON, one COCO .json, or VOC .xml files"
        )
        return Source("mixed", problems)
    if by_kind[".xml"]:
        source = _read_voc(directory, channel, by_kind[".xml"], paths, problems)
    else:
        source = _read_json(directory, channel, by_kind[".json"], problems)
    source.unread |= listing.refused_stems
    source.blind = bool(listing.unlisted)
    return source


def _read_json(directory: Path, channel: str, jsons: list[Path], problems: list[str]) -> Source:
    source = Source("json", problems)
    for path in jsons:
        where = _where(path, directory, channel)
        try:
            # COCO files can be large: no size limit, and polygons dropped as they are decoded.
            doc = files.read_json(path, where, depth=None, object_hook=coco.drop_segmentation)
        except ClientError as exc:
            source.problems.extend(exc.problems)
            source.unread.add(path.stem)
            continue
        if coco.is_coco(doc):
            if len(jsons) > 1:
                source.problems.append(
                    f"{where}: a COCO instances file beside {len(jsons) - 1} other .json file(s); a "
                    "channel holds one COCO file, or one JSON annotation per image"
                )
                continue
            source.format = "coco"
            parsed = coco.parse_coco(doc, where)
            source.problems.extend(parsed.problems)
            source.docs.append(parsed)
        else:
            source.docs.append((path, doc))
    return source


def _read_voc(
    directory: Path, channel: str, xmls: list[Path], paths: list[Path], problems: list[str]
) -> Source:
    source = Source("voc", problems)
    for path in xmls:
        where = _where(path, directory, channel)
        try:
            parsed = voc.parse_voc(files.read_bytes(path, where, ANNOTATION_LIMIT), where)
        except ClientError as exc:
            source.problems.extend(exc.problems)
            source.unread.add(path.stem)
            continue
        source.problems.extend(parsed.problems)
        source.docs.append((path, parsed))
    listed = [p for p in paths if p.name == CLASSES_TXT]
    if listed:
        where = _where(listed[0], directory, channel)
        try:
            names, found = parse_classes_txt(files.read_text(listed[0], where, limit=ANNOTATION_LIMIT), where)
            source.classes_txt, source.problems = names, source.problems + found
        except ClientError as exc:
            source.problems.extend(exc.problems)
    return source


def make_class_map(sources: dict[str, Source]) -> tuple[ClassMap | None, list[str]]:
    """The class map of COCO or VOC annotations over both splits (None for per-image JSON)."""
    formats = {s.format for s in sources.values()}
    if formats == {"json"}:
        return None, []
    if len(formats) > 1:
        shown = ", ".join(f"{split}_annotation: {s.format}" for split, s in sources.items())
        return None, [f"the annotation channels differ in format ({shown}); use one format for both splits"]
    channels = " and ".join(f"{split}_annotation" for split in sources)
    if formats == {"coco"}:
        categories = [c for s in sources.values() for doc in s.docs for c in doc.categories]
        return coco_classes(categories, f"the COCO categories of {channels}")
    lists = {split: s.classes_txt for split, s in sources.items() if s.classes_txt is not None}
    if len({tuple(v) for v in lists.values()}) > 1:
        return None, [
            f"{CLASSES_TXT} differs between {' and '.join(f'{s}_annotation' for s in lists)}; give one list"
        ]
    listed = next(iter(lists.values()), None)
    names = (obj.label for s in sources.values() for _, doc in s.docs for obj in doc.objects)
    where = (
        f"{next(iter(lists))}_annotation/{CLASSES_TXT}" if lists else f"the VOC object names of {channels}"
    )
    return voc_classes(names, listed, where), []


def entries(
    source: Source, class_map: ClassMap | None, directory: Path, channel: str, train: bool
) -> list[Entry]:
    """Every image's annotation of one split, with class ids."""
    found: list[Entry] = []
    if source.format == "coco":
        class_of = class_map.class_of_category()
        for doc in source.docs:
            for image in doc.images:
                found.append(
                    Entry(
                        f"{doc.source} image id {image.id}",
                        image.file_name,
                        None,
                        image.size,
                        doc.pixel_boxes(image, class_of, train),
                    )
                )
    elif source.format == "voc":
        class_of = class_map.class_of_name()
        for path, doc in source.docs:
            found.append(
                Entry(doc.source, doc.filename, path, doc.size, doc.pixel_boxes(class_of, class_map.source))
            )
    else:
        for path, doc in source.docs:
            found.append(_json_entry(path, doc, _where(path, directory, channel)))
    return found


def _json_entry(path: Path, doc: object, where: str) -> Entry:
    entry = Entry(where, None, path)
    if not isinstance(doc, dict):
        entry.problems.append(f"{where}: expected a JSON object with 'annotations', got {type(doc).__name__}")
        return entry
    file = doc.get("file")
    if file is not None and (not isinstance(file, str) or "\0" in file):
        entry.problems.append(f"{where}: 'file' must be the image's path in its channel, got {file!r:.80}")
    else:
        entry.file = file
    size, boxes = declared_size(doc.get("image_size")), annotation_boxes(doc)
    for problem in (size, boxes):
        if isinstance(problem, str):
            entry.problems.append(f"{where}: {problem}")
    if not entry.problems:
        entry.declared, entry.boxes = size, boxes
    return entry


class ImageIndex:
    """The images of a channel, looked up by path (as the annotation names it) or by stem."""

    def __init__(self, directory: Path, channel: str):
        self.root, self.channel = directory, channel
        listing = files.list_channel(directory, channel, lambda p: p.suffix.lower() in IMAGE_SUFFIXES)
        self.images, self.problems = listing.files, listing.problems
        # An annotation whose image is among these is not "without image": the image was named.
        self.refused_stems, self.blind = listing.refused_stems, bool(listing.unlisted)
        self.by_path = {p.relative_to(directory).as_posix(): p for p in self.images}
        self.by_stem: dict[str, list[Path]] = {}
        for image in self.images:
            self.by_stem.setdefault(image.stem, []).append(image)

    def shown(self, image: Path) -> str:
        return f"{self.channel}/{image.relative_to(self.root).as_posix()}"

    def find(
        self, file: str | None, near: Path | None, annotation_dir: Path, field: str = "'file'"
    ) -> Path | str | None:
        """The image an annotation belongs to (`field` names `file` in messages), or why none can be
        found; None when it may be a file the listing refused (already named) or could not see."""
        if file and file.lstrip("/") in self.by_path:
            return self.by_path[file.lstrip("/")]
        stem = Path(file).stem if file else near.stem if near else ""
        matches = self.by_stem.get(stem, [])
        if len(matches) > 1 and near is not None:
            # Prefer the image in the folder that mirrors the annotation's.
            relative = near.parent.relative_to(annotation_dir)
            matches = [m for m in matches if m.parent.relative_to(self.root) == relative] or matches
        if len(matches) == 1:
            return matches[0]
        if matches:
            return f"several images are named {stem}.*: " + ", ".join(self.shown(m) for m in matches)
        if stem in self.refused_stems or self.blind:
            return None
        named = f"{field} {file!r:.80} is not in the channel and no" if file else "no"
        return f"{named} image named {stem}.jpg/.jpeg/.png was found"


def pack_split(
    source: Source,
    class_map: ClassMap | None,
    dirs: tuple[Path, Path],
    split: str,
    num_classes: int,
    label_width: int,
    scratch: Path,
) -> PreparedDetection:
    """Pair, check and pack one split's images; raise ClientError listing every defect."""
    image_dir, annotation_dir = dirs
    annotation_channel = f"{split}_annotation"
    checks = RecordChecks(split, label_width)
    index = ImageIndex(image_dir, split)
    for problem in [*source.problems, *index.problems]:
        checks.problems.add(problem)
    rec = scratch / f"{split}.rec"
    rec.parent.mkdir(parents=True, exist_ok=True)
    used: dict[Path, str] = {}
    difficult = {}
    total = written = 0
    with files.full_disk_named(rec, PREPARING), open(rec, "wb") as out:
        for entry in entries(source, class_map, annotation_dir, annotation_channel, train=split == "train"):
            total += 1
            image = index.find(entry.file, entry.near, annotation_dir, FILE_FIELD[source.format])
            if entry.problems:
                for problem in entry.problems:
                    checks.problems.add(problem)
                if isinstance(image, Path):  # annotated, though defectively: not "without annotation"
                    used.setdefault(image, entry.where)
                continue
            if image is None:
                continue
            if isinstance(image, str):
                checks.problems.add(
                    f"{entry.where}: annotation without image in the {split} channel: {image}"
                )
                continue
            if image in used:
                checks.problems.add(
                    f"{entry.where}: image {index.shown(image)} is annotated twice (also by {used[image]})"
                )
                continue
            used[image] = entry.where
            try:
                data = files.read_bytes(image, index.shown(image))
            except ClientError as exc:
                checks.problems.add(exc.problems[0])
                continue
            size = checked_size(data, index.shown(image), checks)
            if size is None:
                continue
            if entry.declared is not None and entry.declared != size:
                checks.problems.add(
                    f"{entry.where}: {SIZE_FIELD[source.format]} {entry.declared[0]}x{entry.declared[1]} (width x "
                    f"height) but the image is {size[0]}x{size[1]}; the boxes must be in the pixels of the image as stored"
                )
                continue
            malformed = [b for b in entry.boxes if isinstance(b, str)]
            objects = pixel_objects([b for b in entry.boxes if not isinstance(b, str)], num_classes, size)
            objects.problems = malformed + objects.problems
            if not checks.objects_ok(entry.where, objects) or not checks.width_ok(
                entry.where, len(objects.label()), objects.count
            ):
                continue
            checks.count(objects)
            if objects.difficult is not None:  # validation reads them by record id (the batch's index)
                difficult[written] = objects.difficult
            out.write(frame(pack(objects.label(), written, data)))
            written += 1
    for image in index.images:
        if image not in used and (source.docs or source.format == "json") and not source.may_annotate(image):
            add = (
                f'add {annotation_channel}/{image.stem}.json (an image without objects has "annotations": [])'
            )
            if source.format == "coco":
                add = f"add it to the 'images' of the COCO file in {annotation_channel}"
            elif source.format == "voc":
                add = f"add {annotation_channel}/{image.stem}.xml (an image without objects has no <object>)"
            checks.problems.add(f"{index.shown(image)}: image without annotation: {add}")
    source_name = f"{split} + {annotation_channel}"
    checks.finish(written, source_name, total)
    return PreparedDetection(
        split,
        source_name,
        rec,
        written,
        checks.skipped,
        checks.clipped,
        checks.empty,
        difficult,
        checks.objects,
    )


class AnnotatedImages:
    """Both splits' image and annotation channels. The annotations of both are read once, when
    the first split is prepared: COCO's and VOC's class map must cover both."""

    def __init__(self, dirs: dict[str, tuple[Path, Path]]):
        self.dirs = dirs  # split -> (image channel, annotation channel)
        self.sources: dict[str, Source] | None = None
        self.class_map: ClassMap | None = None
        self.class_problems: list[str] = []

    def _read(self, num_classes: int) -> None:
        self.sources = {
            split: read_source(notes, f"{split}_annotation") for split, (_, notes) in self.dirs.items()
        }
        if not all(s.docs for s in self.sources.values() if s.format != "json"):
            return  # an unreadable COCO file: its own problems say why
        self.class_map, self.class_problems = make_class_map(self.sources)
        if self.class_map is not None:
            log.info("Class map from %s: %s", self.class_map.source, self.class_map.describe())
            count = self.class_map.count_problem(num_classes)
            self.class_problems += [count] if count else []

    def prepare(self, split: str, num_classes: int, label_width: int, scratch: Path) -> PreparedDetection:
        first = self.sources is None
        if first:
            self._read(num_classes)
        source = self.sources[split]
        if source.format != "json" and (self.class_map is None or self.class_problems):
            # The class problems are reported with the first split prepared.
            problems = (self.class_problems if first else []) + source.problems
            raise ClientError(
                problems or [f"{split}_annotation: not checked further, as no class map could be made"]
            )
        return pack_split(source, self.class_map, self.dirs[split], split, num_classes, label_width, scratch)
