"""Debian's Chromium for the browser tests, and reading what a page's video shows and plays.

Pictures and sounds carry the test source's codes (phonghop.testpattern): a page's
video element is drawn on a canvas and its luma decoded; its sound goes through
Web Audio and the loudest frequency names the tone.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from playwright.sync_api import Page

from phonghop.testpattern import read_code, room_with_code, tone_hz

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--lang=vi-VN",  # date and time fields as a Vietnamese phone shows them
    "--autoplay-policy=no-user-gesture-required",  # the test listens to the live view's sound itself
]

# A page's video as it shows it (its luma), and the loudest frequency of its sound.
PICTURE_JS = """(selector) => {
  const video = document.querySelector(selector);
  if (!video.videoWidth) return null;
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const context = canvas.getContext('2d');
  context.drawImage(video, 0, 0);
  const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const luma = [];
  for (let i = 0; i < rgba.length; i += 4) {
    luma.push(Math.round(0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2]));
  }
  return {width: canvas.width, height: canvas.height, luma};
}"""
TONE_JS = """async (selector) => {
  const video = document.querySelector(selector);
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 8192;
  context.createMediaStreamSource(video.srcObject).connect(analyser);
  await new Promise((resolve) => setTimeout(resolve, 700));
  const levels = new Float32Array(analyser.frequencyBinCount);
  analyser.getFloatFrequencyData(levels);
  let loudest = 1;
  for (let i = 2; i < levels.length; i++) if (levels[i] > levels[loudest]) loudest = i;
  const hz = loudest * context.sampleRate / analyser.fftSize;
  await context.close();
  return levels[loudest] > -90 ? hz : null;
}"""
# Run before a page's own scripts: its peer connections are kept for the test to read their statistics.
KEEP_PEERS_JS = """(() => {
  window.__peers = [];
  const Original = window.RTCPeerConnection;
  window.RTCPeerConnection = function (config) {
    const pc = new Original(config);
    window.__peers.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
})();"""


def room_in_video(page: Page, rooms: Iterable[str], video: str = "#live-video") -> str | None:
    """The room whose test code the page's video shows now."""
    picture = page.evaluate(PICTURE_JS, video)
    if picture is None:
        return None
    luma = np.array(picture["luma"], dtype=np.uint8).reshape(picture["height"], picture["width"])
    return room_with_code(read_code(luma), rooms)


def tone_in_video_is(page: Page, room: str, video: str = "#live-video") -> bool:
    hz = page.evaluate(TONE_JS, video)
    return hz is not None and abs(hz - tone_hz(room)) < 25
