"""engine.dataset.boxes: VOC and COCO files read, checked against the images, problems one line each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.dataset.boxes import Box, boxes_for_source, read_coco, read_voc, region, write_voc
from engine.errors import EngineError


def _image(path: Path, w: int = 40, h: int = 30) -> Path:
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)
    return path


def test_voc_round_trip(tmp_path: Path) -> None:
    boxes = [Box("cat", 0, 0, 40, 30), Box("dog", 5, 6, 12, 20)]
    write_voc(tmp_path / "a.xml", "a.png", (40, 30), boxes)
    got = read_voc(tmp_path / "a.xml")
    assert (got.image_name, got.width, got.height) == ("a.png", 40, 30)
    assert got.boxes == tuple(boxes)
    assert got.labels == ("cat", "dog")
    assert region(boxes[1]) == (6, 5, 20, 12)  # top, left, bottom, right


def test_voc_refuses_doctype_and_entities(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xml"
    path.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><annotation>&x;</annotation>')
    with pytest.raises(EngineError, match="DOCTYPE or entities"):
        read_voc(path)


def test_voc_folder_problems_and_the_rest_is_read(tmp_path: Path) -> None:
    for stem in ("good", "partly", "outside", "broken", "nobox", "doctype", "plain"):
        _image(tmp_path / f"{stem}.png")
    write_voc(tmp_path / "good.xml", "good.png", (40, 30), [Box("cat", 2, 3, 20, 25)])
    write_voc(
        tmp_path / "partly.xml", "partly.png", (40, 30), [Box("cat", 30, 20, 60, 50), Box("dog", 1, 1, 5, 5)]
    )
    write_voc(tmp_path / "outside.xml", "outside.png", (40, 30), [Box("cat", 50, 40, 60, 50)])
    write_voc(tmp_path / "missing.xml", "missing.png", (40, 30), [Box("cat", 0, 0, 5, 5)])
    (tmp_path / "broken.xml").write_text("<annotation><object><name>cat</name><bndbox><xmin>1</xmin>")
    (tmp_path / "nobox.xml").write_text(
        "<annotation><object><name>x</name><bndbox><xmin>a</xmin>"
        "<ymin>1</ymin><xmax>3</xmax><ymax>3</ymax></bndbox></object></annotation>"
    )
    (tmp_path / "doctype.xml").write_text('<!DOCTYPE annotation SYSTEM "http://x/y.dtd"><annotation/>')
    found, problems = boxes_for_source(tmp_path)
    names = {p.name: b for p, b in found.items()}
    assert set(names) == {"good.png", "partly.png", "outside.png"}
    assert names["good.png"].boxes == (Box("cat", 2, 3, 20, 25),)
    assert names["partly.png"].boxes == (Box("cat", 30, 20, 40, 30), Box("dog", 1, 1, 5, 5))
    assert names["outside.png"].boxes == ()
    text = "\n".join(problems)
    assert all("\n" not in p for p in problems)
    assert "missing.xml: no image missing.* beside it; skipped" in text
    assert "partly.xml: box 1 cat (30, 20)-(60, 50) reaches outside the 40x30 image; clipped" in text
    assert "outside.xml: box 1 cat (50, 40)-(60, 50) lies outside the 40x30 image; skipped" in text
    assert "broken.xml: malformed XML" in text
    assert "nobox.xml: object 1 <xmin> 'a' is not a number; skipped" in text
    assert "doctype.xml: refused" in text
    assert len(problems) == 6


def test_coco_folder_problems_and_the_rest_is_read(tmp_path: Path) -> None:
    _image(tmp_path / "one.png")
    sub = tmp_path / "sub"
    sub.mkdir()
    _image(sub / "two.jpg", 20, 10)
    doc = {
        "images": [
            {"id": 1, "file_name": "one.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "two.jpg", "width": 20, "height": 10},  # found by name in sub/
            {"id": 3, "file_name": "gone.png", "width": 40, "height": 30},
            {"id": 4},
        ],
        "annotations": [
            {"image_id": 1, "category_id": 7, "bbox": [2, 3, 10, 12]},
            {"image_id": 1, "category_id": 8, "bbox": [35, 25, 10, 10]},
            {"image_id": 2, "category_id": 7, "bbox": [1, 1, "wide", 3]},
            {"image_id": 2, "category_id": 7, "bbox": [0, 0, 20, 10]},
            {"image_id": 3, "category_id": 7, "bbox": [0, 0, 5, 5]},
            {"image_id": 99, "category_id": 7, "bbox": [0, 0, 5, 5]},
        ],
        "categories": [{"id": 7, "name": "cat"}, {"id": 8, "name": "dog"}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(doc))
    (tmp_path / "one.png.json").write_text("{}")  # an export sidecar: never taken for COCO
    table = read_coco(tmp_path / "instances.json")
    assert table["one.png"].boxes == (Box("cat", 2, 3, 12, 15), Box("dog", 35, 25, 45, 35))
    found, problems = boxes_for_source(tmp_path)
    names = {p.name: b for p, b in found.items()}
    assert set(names) == {"one.png", "two.jpg"}
    assert names["one.png"].boxes == (Box("cat", 2, 3, 12, 15), Box("dog", 35, 25, 40, 30))
    assert names["two.jpg"].boxes == (Box("cat", 0, 0, 20, 10),)
    text = "\n".join(problems)
    assert "images[3] has no id or file_name; skipped" in text
    assert "annotations[2] has no bbox of four numbers [x, y, w, h]; skipped" in text
    assert "annotations[5] names no listed image; skipped" in text
    assert "instances.json: image gone.png is not in the folder; its boxes are skipped" in text
    assert "box 2 dog (35, 25)-(45, 35) reaches outside the 40x30 image; clipped" in text


def test_malformed_coco_file_is_reported(tmp_path: Path) -> None:
    _image(tmp_path / "one.png")
    (tmp_path / "coco.json").write_text('{"images": [ {"id": 1,')
    write_voc(tmp_path / "one.xml", "one.png", (40, 30), [Box("", 0, 0, 40, 30)])
    found, problems = boxes_for_source(tmp_path)
    assert [p.name for p in found] == ["one.png"]  # the VOC boxes are still read
    assert len(problems) == 1 and problems[0].startswith("coco.json: malformed JSON (line 1")


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="not one"):
        boxes_for_source(tmp_path / "nope")
