"""Debian's chromium, headless, driven by Playwright (its driver only: the browser is the system's).

The flags are the ones this machine needs: without the background-networking ones Chromium keeps
trying hosts the closed network refuses.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def page(width: int = 1600, height: int = 1000, scale: float = 1) -> Iterator[Any]:
    """A fresh headless page of ``width`` x ``height`` CSS pixels, ``scale`` device pixels each; skips only
    outside CI when chromium is not installed (CI installs it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            raise AssertionError(f"chromium is not installed at {CHROMIUM} (.ci/run installs Debian's package)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=scale)
        finally:
            browser.close()
