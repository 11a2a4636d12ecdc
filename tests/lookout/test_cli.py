"""`pole-agent appearance`: JSON lines in the order given, errors naming the argument."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.cli import main


def test_json_per_box_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = np.full((240, 200, 3), 128, np.uint8)
    img[20:130, 40:100] = (30, 30, 200)
    img[130:220, 40:100] = (160, 90, 40)
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), img)
    assert (
        main(["appearance", str(path), "--box", "40,20,100,220", "--box", "0,0,10,10", "--json"])
        == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["box"] == [40, 20, 100, 220]
    assert lines[0]["upper"][0][0] == "red"
    assert lines[0]["lower"][0][0] == "blue"
    assert lines[1]["judged"] is False


@pytest.mark.parametrize("box", ["1,2,3", "a,b,c,d", "50,50,10,10"])
def test_bad_box_names_the_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], box: str
) -> None:
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), np.zeros((60, 60, 3), np.uint8))
    assert main(["appearance", str(path), "--box", box]) == 2
    assert "--box" in capsys.readouterr().err


def test_missing_image(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["appearance", "/nonexistent.png", "--box", "0,0,10,60"]) == 2
    assert "IMAGE" in capsys.readouterr().err
