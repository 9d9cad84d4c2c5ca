"""The user's own object boxes for a folder of images: Pascal VOC XML files or one COCO JSON.

Standard library only (xml.etree.ElementTree, json); importing this module imports no
TensorFlow and no NumPy.

- ``read_voc(xml_path) -> ImageBoxes``: one Pascal VOC annotation file (``<annotation>`` with
  ``<filename>``, ``<size>`` and ``<object><name><bndbox>`` entries).
- ``read_coco(json_path) -> {file name: ImageBoxes}``: a COCO detection file (``images``,
  ``annotations`` with ``bbox`` [x, y, w, h], ``categories``).
- ``boxes_for_source(folder) -> ({image path: ImageBoxes}, problems)``: the VOC files beside
  the images (same stem: ``cat1.jpg`` + ``cat1.xml``) and/or the one COCO JSON in the folder,
  checked against the images: an annotation for an image that is not there, a box partly
  outside its image (clipped) or wholly outside or empty (skipped), and a malformed file
  (skipped) each give one line in ``problems``; everything else is still used.
- ``write_voc(path, image_name, size, boxes)``: writes a VOC file; ``write_shapes_folder(folder, n)``
  writes n generated builtin:shapes images with their VOC files (tests, bench/evaluate_shapes.py).

A ``Box`` holds pixel coordinates on the image as it is loaded (0-based, x1/y1 exclusive, so a
box of the whole W x H image is (0, 0, W, H)). VOC's 1-based inclusive corners
(xmin, ymin, xmax, ymax) become (xmin - 1, ymin - 1, xmax, ymax); COCO's [x, y, w, h] becomes
(x, y, x + w, y + h).

XML is parsed only after refusing any document type declaration or entity (``<!DOCTYPE``,
``<!ENTITY``): VOC files need neither, and refusing them rules out entity expansion attacks
and external entities, as defusedxml does.
"""

from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError

__all__ = [
    "Box",
    "ImageBoxes",
    "boxes_for_source",
    "read_coco",
    "read_voc",
    "region",
    "write_shapes_folder",
    "write_voc",
]

MAX_XML_BYTES = 8 * 1024 * 1024  # a VOC file is a few kB
MAX_JSON_BYTES = 2 * 1024**3  # COCO train2017's instances file is about 450 MB
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class Box:
    """An object box in image pixels: (x0, y0) its top-left corner, (x1, y1) exclusive; label may be ""."""

    label: str
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)

    def describe(self) -> str:
        name = f"{self.label} " if self.label else ""
        return f"{name}({_num(self.x0)}, {_num(self.y0)})-({_num(self.x1)}, {_num(self.y1)})"


@dataclass(frozen=True)
class ImageBoxes:
    """The boxes of one image: its file name, the size the annotation states (0 when absent)."""

    image_name: str
    width: int
    height: int
    boxes: tuple[Box, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        """The distinct non-empty labels, in order of first appearance."""
        return tuple(dict.fromkeys(b.label for b in self.boxes if b.label))


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.1f}"


def region(box: Box) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) in whole pixels, covering every pixel the box touches
    (engine.attribution.metrics' region form)."""
    return (math.floor(box.y0), math.floor(box.x0), math.ceil(box.y1), math.ceil(box.x1))


# ----------------------------------------------------------------------------- VOC
def _read_text(path: Path, limit: int, what: str) -> str:
    try:
        size = path.stat().st_size
        if size > limit:
            raise EngineError(f"{path.name}: {size / 1e6:.0f} MB is too large for a {what} file")
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise EngineError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise EngineError(f"{path.name}: not a UTF-8 text file") from None
    except OSError as exc:
        raise EngineError(f"{path.name}: cannot read it ({exc.strerror or exc})") from None


def _parse_xml(text: str, name: str) -> ET.Element:
    upper = text.upper()
    if "<!DOCTYPE" in upper or "<!ENTITY" in upper:
        raise EngineError(f"{name}: refused: the XML declares a DOCTYPE or entities (VOC files need none)")
    try:
        return ET.fromstring(text)
    except ET.ParseError as exc:
        raise EngineError(f"{name}: malformed XML ({exc})") from None


def _child_text(node: ET.Element, tag: str) -> str:
    child = node.find(tag)
    return (child.text or "").strip() if child is not None else ""


def _number(text: str, what: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise EngineError(f"{name}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise EngineError(f"{name}: {what} {text!r} is not a finite number")
    return value


def read_voc(xml_path: str | os.PathLike) -> ImageBoxes:
    """One Pascal VOC annotation file; raises EngineError (one line) for a malformed one.

    The image name is `<filename>` (else the XML's stem), the size `<size><width>/<height>` (0
    when absent). An object without a `<bndbox>` or with a corner that is not a number makes the
    file malformed.
    """
    path = Path(xml_path)
    name = path.name
    root = _parse_xml(_read_text(path, MAX_XML_BYTES, "VOC"), name)
    if root.tag != "annotation":
        raise EngineError(f"{name}: not a Pascal VOC file (root element <{root.tag}>, expected <annotation>)")
    size = root.find("size")
    width = height = 0
    if size is not None:
        width = int(_number(_child_text(size, "width") or "0", "width", name))
        height = int(_number(_child_text(size, "height") or "0", "height", name))
    boxes = []
    for k, obj in enumerate(root.iter("object"), 1):
        bnd = obj.find("bndbox")
        if bnd is None:
            raise EngineError(f"{name}: object {k} has no <bndbox>")
        corners = []
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            text = _child_text(bnd, tag)
            if not text:
                raise EngineError(f"{name}: object {k} has no <{tag}>")
            corners.append(_number(text, f"object {k} <{tag}>", name))
        xmin, ymin, xmax, ymax = corners
        boxes.append(Box(_child_text(obj, "name"), xmin - 1.0, ymin - 1.0, xmax, ymax))
    image_name = _child_text(root, "filename") or path.stem
    return ImageBoxes(image_name, width, height, tuple(boxes))


def write_voc(
    path: str | os.PathLike, image_name: str, size: tuple[int, int] | tuple[int, int, int], boxes: list[Box]
) -> Path:
    """Write a Pascal VOC file for `image_name` of size (width, height[, depth]) with `boxes`.

    Corners are written as VOC's 1-based inclusive pixels (read_voc reads them back exactly
    for whole-pixel boxes).
    """
    width, height = int(size[0]), int(size[1])
    depth = int(size[2]) if len(size) > 2 else 3
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = Path(path).parent.name
    ET.SubElement(root, "filename").text = image_name
    sz = ET.SubElement(root, "size")
    for tag, value in (("width", width), ("height", height), ("depth", depth)):
        ET.SubElement(sz, tag).text = str(value)
    for box in boxes:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = box.label
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        corners = (box.x0 + 1, box.y0 + 1, box.x1, box.y1)
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), corners, strict=True):
            ET.SubElement(bnd, tag).text = _num(value)
    ET.indent(root)
    out = Path(path)
    out.write_text(ET.tostring(root, encoding="unicode") + "\n", encoding="utf-8")
    return out


def write_shapes_folder(
    folder: str | os.PathLike, n: int, seed: int = 4321, size: int | None = None
) -> list[Path]:
    """n generated builtin:shapes images (engine.zoo.shapes.generate, seed `seed`) as PNG files in
    `folder`, each with a VOC file beside it holding the shape's box and class; the image paths."""
    from PIL import Image

    from engine.zoo import shapes

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for data in shapes.iter_batches(int(n), seed, 100, size=size or shapes.SIZE):
        for image, label, (top, left, bottom, right) in zip(
            data.images, data.labels, data.boxes, strict=True
        ):
            stem = f"shape_{len(paths):05d}"
            Image.fromarray(image).save(out / f"{stem}.png")
            box = Box(shapes.CLASS_NAMES[int(label)], float(left), float(top), float(right), float(bottom))
            write_voc(out / f"{stem}.xml", f"{stem}.png", (image.shape[1], image.shape[0], 3), [box])
            paths.append(out / f"{stem}.png")
    return paths


# ----------------------------------------------------------------------------- COCO
def read_coco(json_path: str | os.PathLike) -> dict[str, ImageBoxes]:
    """A COCO detection file: {image file_name: ImageBoxes}, every image listed (some without boxes).

    Raises EngineError for a file that is not COCO JSON at all; single annotations that are
    malformed (no bbox of four numbers, an unknown image id) are skipped: see read_coco_checked.
    """
    return read_coco_checked(json_path)[0]


def read_coco_checked(json_path: str | os.PathLike) -> tuple[dict[str, ImageBoxes], list[str]]:
    """read_coco with the problems found on the way: ({file_name: ImageBoxes}, problems)."""
    path = Path(json_path)
    name = path.name
    try:
        doc = json.loads(_read_text(path, MAX_JSON_BYTES, "COCO"))
    except json.JSONDecodeError as exc:
        raise EngineError(f"{name}: malformed JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise EngineError(f"{name}: not a COCO file (no list of 'images')")
    annotations = doc.get("annotations", [])
    if not isinstance(annotations, list):
        raise EngineError(f"{name}: 'annotations' is not a list")
    problems: list[str] = []
    categories = {}
    for cat in doc.get("categories") or []:
        if isinstance(cat, dict) and "id" in cat:
            categories[cat["id"]] = str(cat.get("name", cat["id"]))
    images: dict[object, tuple[str, int, int]] = {}
    for k, entry in enumerate(doc["images"]):
        if not isinstance(entry, dict) or "id" not in entry or not entry.get("file_name"):
            problems.append(f"{name}: images[{k}] has no id or file_name; skipped")
            continue
        try:
            size = int(entry.get("width") or 0), int(entry.get("height") or 0)
        except (TypeError, ValueError):
            size = (0, 0)
        images[entry["id"]] = (str(entry["file_name"]), *size)
    boxes: dict[object, list[Box]] = {key: [] for key in images}
    for k, ann in enumerate(annotations):
        bbox = ann.get("bbox") if isinstance(ann, dict) else None
        where = f"{name}: annotations[{k}]"
        if not isinstance(ann, dict) or ann.get("image_id") not in images:
            problems.append(f"{where} names no listed image; skipped")
            continue
        ok = isinstance(bbox, list) and len(bbox) == 4
        ok = ok and all(isinstance(v, int | float) and math.isfinite(v) for v in bbox)
        if not ok:
            problems.append(f"{where} has no bbox of four numbers [x, y, w, h]; skipped")
            continue
        x, y, w, h = (float(v) for v in bbox)
        label = categories.get(
            ann.get("category_id"), "" if ann.get("category_id") is None else str(ann["category_id"])
        )
        boxes[ann["image_id"]].append(Box(label, x, y, x + w, y + h))
    out: dict[str, ImageBoxes] = {}
    for key, (file_name, width, height) in images.items():
        if file_name in out:
            problems.append(f"{name}: {file_name} is listed twice; its boxes are merged")
            old = out[file_name]
            out[file_name] = ImageBoxes(file_name, width, height, old.boxes + tuple(boxes[key]))
        else:
            out[file_name] = ImageBoxes(file_name, width, height, tuple(boxes[key]))
    return out, problems


# ----------------------------------------------------------------------------- a folder
def _image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) as engine.images.load_image will see it (EXIF rotation applied); header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, ValueError):
        return None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _checked(boxes: ImageBoxes, size: tuple[int, int] | None, where: str, problems: list[str]) -> ImageBoxes:
    """The boxes clipped to the image (reported), the empty and wholly outside ones dropped (reported)."""
    if size is None:
        return boxes
    width, height = size
    if boxes.width and boxes.height and (boxes.width, boxes.height) != (width, height):
        problems.append(
            f"{where}: the annotation says {boxes.width}x{boxes.height} but the image is "
            f"{width}x{height}; boxes used as they are"
        )
    kept = []
    for k, box in enumerate(boxes.boxes, 1):
        x0, y0 = max(box.x0, 0.0), max(box.y0, 0.0)
        x1, y1 = min(box.x1, float(width)), min(box.y1, float(height))
        if box.x1 <= box.x0 or box.y1 <= box.y0:
            problems.append(f"{where}: box {k} {box.describe()} is empty; skipped")
        elif x1 <= x0 or y1 <= y0:
            problems.append(
                f"{where}: box {k} {box.describe()} lies outside the {width}x{height} image; skipped"
            )
        elif (x0, y0, x1, y1) != (box.x0, box.y0, box.x1, box.y1):
            problems.append(
                f"{where}: box {k} {box.describe()} reaches outside the {width}x{height} image; clipped"
            )
            kept.append(Box(box.label, x0, y0, x1, y1))
        else:
            kept.append(box)
    return ImageBoxes(boxes.image_name, width, height, tuple(kept))


def _coco_files(root: Path) -> list[Path]:
    """The JSON files directly in `root` that hold COCO data (sidecars FILE.png.json are not)."""
    found = []
    for path in sorted(root.glob("*.json")):
        if path.name.startswith(".") or Path(path.stem).suffix.lower() in _IMAGE_SUFFIXES:
            continue
        found.append(path)
    return found


def boxes_for_source(folder: str | os.PathLike) -> tuple[dict[Path, ImageBoxes], list[str]]:
    """The boxes of every image below `folder`: ({image path: ImageBoxes}, problems).

    VOC: an XML file beside an image with the same stem (``a.jpg`` + ``a.xml``). COCO: one JSON
    file directly in the folder; its file names are relative to the folder (else matched by
    file name when that is unique). Where an image has both, the VOC file wins. Every problem is
    one line; nothing here raises for a bad annotation, only for a folder that does not exist.
    """
    from engine.images import IMAGE_SUFFIXES

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise EngineError(f"boxes are read from a folder of images; {root} is not one")
    images: dict[Path, Path] = {}  # stem path (no suffix) -> image path
    by_name: dict[str, list[Path]] = {}
    xmls: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fname in sorted(filenames):
            if fname.startswith("."):
                continue
            full = Path(dirpath) / fname
            suffix = full.suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                images.setdefault(full.with_suffix(""), full)
                by_name.setdefault(fname, []).append(full)
            elif suffix == ".xml":
                xmls.append(full)
    problems: list[str] = []
    found: dict[Path, ImageBoxes] = {}
    coco = _coco_files(root)
    for path in coco:
        try:
            table, issues = read_coco_checked(path)
        except EngineError as exc:
            if len(coco) > 1:  # other JSON files may be unrelated
                continue
            problems.append(f"{exc}; skipped")
            continue
        problems += issues
        for file_name, entry in table.items():
            image = root / file_name
            if not image.is_file():
                matches = by_name.get(Path(file_name).name, [])
                if len(matches) != 1:
                    problems.append(
                        f"{path.name}: image {file_name} is not in the folder; its boxes are skipped"
                    )
                    continue
                image = matches[0]
            found[image] = _checked(entry, _image_size(image), f"{path.name}: {file_name}", problems)
        break  # one COCO file
    for xml in xmls:
        rel = xml.relative_to(root).as_posix()
        image = images.get(xml.with_suffix(""))
        if image is None:
            problems.append(f"{rel}: no image {xml.stem}.* beside it; skipped")
            continue
        try:
            entry = read_voc(xml)
        except EngineError as exc:
            problems.append(f"{rel}: {str(exc).removeprefix(xml.name + ': ')}; skipped")
            continue
        if image in found:
            problems.append(f"{rel}: {image.name} also has COCO boxes; the VOC file is used")
        found[image] = _checked(entry, _image_size(image), rel, problems)
    return found, problems
