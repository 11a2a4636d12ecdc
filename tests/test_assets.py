"""Assets are verified by sha256: a damaged or wrong file is refused with the remedy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent import assets


def test_cached_assets_verify() -> None:
    # scripts/setup.sh fetched them; the suite relies on the real files.
    for name in assets.ASSETS:
        assert assets.verify(name).stat().st_size == assets.ASSETS[name].size


def test_corrupted_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _real("model")
    monkeypatch.setenv("POLE_AGENT_CACHE", str(tmp_path))
    copy = tmp_path / "yolo11n.onnx"
    shutil.copyfile(good, copy)
    with copy.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(assets.AssetError, match=r"damaged or not the expected file.*assets fetch"):
        assets.verify("model")


def test_missing_file_says_how_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLE_AGENT_CACHE", str(tmp_path))
    with pytest.raises(assets.AssetError, match="pole-agent assets fetch"):
        assets.verify("video")


def test_fetch_keeps_a_verified_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    video = _real("video")
    monkeypatch.setenv("POLE_AGENT_CACHE", str(tmp_path))
    shutil.copyfile(video, tmp_path / "vtest.avi")
    assert assets.fetch("video") == tmp_path / "vtest.avi"  # no download: it verifies


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLE_AGENT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert assets.cache_dir() == tmp_path / "pole-agent"
    monkeypatch.setenv("POLE_AGENT_CACHE", str(tmp_path / "x"))
    assert assets.cache_dir() == tmp_path / "x"


def _real(name: str) -> Path:
    return assets.verify(name)
