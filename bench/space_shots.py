"""Screenshots of the Space over finished runs: the pages that tell each run's champion story, at desktop
(1366x900) and phone (390x844) size, in headless Chromium (Debian's `chromium`) through Playwright.

The Space is served read-only over `--runs` (no scheduler: nothing in the folders is written); for every run
there, or those named with `--only`, it saves `<size>-<run>-leaderboard.png` (the run chosen), `-model.png`
(the champion's page), `-pareto.png` (the Pareto plot) and `-family-tree.png` (the tree the champion opens on:
its own when bred, else the best bred finalist's) under `--out`. Printed: one line per picture, and whether the
page was wider than the screen anywhere.

    python bench/space_shots.py --runs runs --out artifacts/space-shots [--only demo]
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from pathlib import Path

VIEWPORTS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def choose(page, dropdown: str, option: str) -> None:
    """Type `option` into the dropdown's filter (its list shows the first 100 options), then pick it."""
    box = page.locator(f"{dropdown} input")
    box.click()
    box.fill("")
    box.press_sequentially(option, delay=10)
    page.locator(dropdown).get_by_role("option", name=option, exact=True).click()


def settled_picture(page, box: str) -> None:
    """Wait until the image in `box` is loaded, then a moment for fonts."""
    page.wait_for_function("box => { const img = document.querySelector(box + ' img'); "
                           "return img && img.complete && img.naturalWidth > 0; }", arg=box)
    time.sleep(1.0)


def shoot(page, out: Path, name: str, *, element: str | None = None) -> None:
    time.sleep(0.8)
    target = page.locator(element) if element else page
    target.screenshot(path=str(out / f"{name}.png"), **({} if element else {"full_page": True}))
    wide = page.evaluate("document.scrollingElement.scrollWidth")
    print(f"{name}.png{'  (page wider than the screen: ' + str(wide) + ' px)' if wide > page.viewport_size['width'] else ''}")


def story(page, run: str, folder: str, decision: dict, out: Path, size: str) -> None:
    """The four pictures of one run at one size."""
    from playwright.sync_api import expect

    choose(page, "#leaderboard-run", run)
    expect(page.locator("#champion-summary")).to_contain_text(decision["champion_name"], timeout=60_000)
    shoot(page, out, f"{size}-{folder}-leaderboard")
    page.get_by_role("tab", name="Model").click()
    choose(page, "#model-picker", f"{run} · {decision['champion_name']}")
    expect(page.locator("#model-verdict")).to_contain_text(decision["text"], timeout=60_000)
    shoot(page, out, f"{size}-{folder}-model")
    page.get_by_role("tab", name="Progress").click()
    choose(page, "#progress-run", run)
    settled_picture(page, "#pareto-plot")
    shoot(page, out, f"{size}-{folder}-pareto", element="#pareto-plot")
    page.get_by_role("tab", name="Family tree").click()
    lineage = decision["champion_name"] if decision.get("crowned") else decision.get("challenger_name")
    choose(page, "#tree-model", f"{run} · {lineage or decision['champion_name']}")
    settled_picture(page, "#tree-image")
    shoot(page, out, f"{size}-{folder}-family-tree")
    page.get_by_role("tab", name="Leaderboard").click()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="a folder of run folders")
    parser.add_argument("--out", type=Path, default=Path("artifacts/space-shots"))
    parser.add_argument("--only", nargs="*", help="run folder names (default: every run with a champion.json)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from space.controls.ui import build_app, serve
    from space.data.catalog import Catalog

    shown = {Path(r.where).name: r.name for r in Catalog(runs_root=args.runs, hub_datasets=()).runs()}  # as the tabs name them
    runs = {p.name: json.loads((p / "champion.json").read_text()) for p in sorted(args.runs.iterdir())
            if p.name in shown and (p / "champion.json").is_file() and (not args.only or p.name in args.only)}
    if not runs:
        raise SystemExit(f"--runs {args.runs}: no run folder with a champion.json" + (f" among {args.only}" if args.only else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    app = build_app(runs_root=args.runs, controller=None, admin_token=None, allow_list=[])
    serve(app, port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium)
            for size, viewport in VIEWPORTS.items():
                phone = size == "phone"
                context = browser.new_context(viewport=viewport, is_mobile=phone, has_touch=phone)
                page = context.new_page()
                page.set_default_timeout(60_000)
                page.goto(app.local_url)
                page.locator("#leaderboard [role=gridcell]").first.wait_for()
                for folder, decision in runs.items():
                    story(page, shown[folder], folder, decision, args.out, size)
                context.close()
            browser.close()
    finally:
        app.close()


if __name__ == "__main__":
    main()
