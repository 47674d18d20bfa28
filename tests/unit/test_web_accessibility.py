"""Accessibility basics of the console's pages: a skip link to the main content, a label for every text box and
form control, and badge colours that meet WCAG AA contrast (4.5:1) for their text."""

from __future__ import annotations

import re
from pathlib import Path

from web_support import web_desk

CSS = (Path(__file__).resolve().parents[2] / "bot" / "web" / "static" / "app.css").read_text()


def _luminance(colour: str) -> float:
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_priority_badges_have_readable_contrast() -> None:
    badges = re.findall(r"\.prio-\d \{ background: (#[0-9a-f]{6}); color: (#[0-9a-f]{3,6});", CSS)
    assert len(badges) >= 3
    for background, text in badges:
        text = "#" + "".join(c * 2 for c in text[1:]) if len(text) == 4 else text
        assert _contrast(background, text) >= 4.5, (background, text)


def test_pages_have_a_skip_link_and_every_control_a_label(tmp_path: Path) -> None:
    with web_desk(tmp_path) as desk:
        ticket_id = desk.escalate()
        pages = {
            "ann": ["/queue", f"/tickets/{ticket_id}"],
            "eve": ["/faq", "/faq/entries/reset-hub"],
        }
        for username, paths in pages.items():
            client = desk.logged_in(username)
            for path in paths:
                page = client.get(path)
                assert page.status_code == 200, path
                html = page.text
                assert '<a class="skip-link" href="#main">' in html and '<main id="main"' in html, path
                for match in re.finditer(r"<(?:textarea|select|input)\b[^>]*>", html):
                    tag = match.group(0)
                    if re.search(r'type="(hidden|submit|checkbox|radio)"', tag):
                        continue
                    before = html[: match.start()]
                    inside_label = before.rfind("<label") > before.rfind("</label>")
                    control_id = re.search(r'\bid="([^"]+)"', tag)
                    labelled = inside_label or "aria-label=" in tag or (
                        control_id is not None and f'for="{control_id.group(1)}"' in html
                    )
                    assert labelled, f"{path}: {tag}"
