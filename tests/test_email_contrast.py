"""The email in a real browser (headless Chromium) at phone and desktop widths, in light and in dark
mode (`prefers-color-scheme: dark`, as Apple Mail and iOS Mail apply it): every visible piece of text
reaches WCAG AA contrast (4.5:1) against the background it is actually drawn on. Screenshots go to
tests/artifacts/ (gitignored)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from test_browser import ARTIFACTS, browser  # noqa: F401 - the shared Chromium fixture

from digest.collect import load_archive
from digest.render.email import render_email

pytestmark = pytest.mark.browser

# For each visible element with text of its own: its colour and the background under it, found by
# compositing every ancestor's background from the page canvas down (bgcolor attributes included).
CONTRAST = """
(canvas) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(',').map(parseFloat);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const over = (top, under) => ({
    r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a),
    b: top.b * top.a + under.b * (1 - top.a), a: 1,
  });
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  const visible = (el) => {
    const rect = el.getBoundingClientRect();
    if (rect.width < 1 || rect.height < 1) return false;
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.display === 'none' || s.visibility === 'hidden' || parseFloat(s.opacity) === 0) return false;
    }
    return true;
  };
  const results = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim()).map((n) => n.textContent.trim());
    if (!own.length || !visible(el)) continue;
    const chain = [];
    for (let e = el; e; e = e.parentElement) chain.unshift(e);
    let bg = canvas;
    for (const e of chain) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) bg = over(c, bg);
    }
    const fg = over(parse(getComputedStyle(el).color), bg);
    results.push({tag: el.tagName, text: own.join(' ').slice(0, 60), fg, bg, ratio: ratio(fg, bg)});
  }
  return results;
}
"""
CANVAS = {"light": {"r": 255, "g": 255, "b": 255, "a": 1}, "dark": {"r": 18, "g": 18, "b": 18, "a": 1}}


@pytest.fixture(scope="module")
def emails(tmp_path_factory) -> dict[str, Path]:
    """The shipped months' emails, personalised with a real-looking unsubscribe link, as files."""
    from conftest import REPO, site_settings, to_toml

    from digest.config import load_config

    root = tmp_path_factory.mktemp("contrast")
    (root / "digest.toml").write_text(to_toml(site_settings("America/New_York")))
    config = load_config(root / "digest.toml")
    config = replace(config, paths=replace(config.paths, content=REPO / "content", templates=REPO / "digest" / "theme"))
    archive = load_archive(config)
    files = {}
    for month in (date(2025, 2, 1), date(2024, 12, 1), date(2025, 6, 1)):  # links, note and quote; cut; notes
        email = render_email(archive.issue(month), config)
        path = root / f"{email.key}.html"
        path.write_text(email.html.replace(email.slot, "https://links.example.com/unsubscribe/abc.def"))
        files[email.key] = path
    return files


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 800])
@pytest.mark.parametrize("key", ["2025-02", "2024-12", "2025-06"])
def test_every_text_reaches_aa_contrast(browser, emails, key, width, scheme):  # noqa: F811
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    try:
        page.goto(emails[key].as_uri())
        texts = page.evaluate(CONTRAST, CANVAS[scheme])
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"email-{key}-{width}-{scheme}.png"), full_page=True)
    finally:
        page.close()
    assert len(texts) > 20  # the band, header, every entry, the footer
    low = [(t["text"], round(t["ratio"], 2)) for t in texts if t["ratio"] < 4.5]
    assert low == [], f"{len(low)} texts under 4.5:1 in {scheme} mode at {width}px: {low[:10]}"
    if scheme == "dark":  # dark mode really applies: the page and the band are dark, not just the text
        backgrounds = {round(sum((t["bg"]["r"], t["bg"]["g"], t["bg"]["b"])) / 3) for t in texts}
        assert max(backgrounds) < 60, backgrounds
